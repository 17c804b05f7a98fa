"""Recurring schedules: a trigger that turns into ordinary tasks, one per fire.

Each fire creates a Task whose id is ``"<schedule id>@<fire time in ms>"``, so
retries, priorities, dependencies and the audit trail apply to it, and a
store's uniqueness on task ids makes every fire happen exactly once, even when
several schedulers share one store: the second one to create a fire's task
finds it there and moves on.

Missed fires (the process was down, the loop was blocked) are planned by
:func:`asched.core.misfire.plan_misfires`: within ``misfire_grace_s`` they run
(one for all of them when ``coalesce``), older ones are skipped and counted.
A fire that would exceed ``max_instances`` running or waiting tasks of the
schedule is skipped and counted too (policy: skip, never queue up).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from asched.core.misfire import DEFAULT_MAX_CATCH_UP, DEFAULT_MISFIRE_GRACE_S
from asched.core.triggers import IntervalTrigger, Trigger, trigger_from_dict
from asched.errors import TaskValidationError
from asched.model import TaskPriority

SCHEDULE_RECORD_VERSION = 1


@dataclass(slots=True)
class Schedule:
    """A recurring schedule and its progress."""

    id: str
    task_type: str
    data_json: bytes
    trigger: Trigger
    priority: TaskPriority = TaskPriority.MEDIUM
    misfire_grace_s: float | None = DEFAULT_MISFIRE_GRACE_S
    coalesce: bool = True
    max_instances: int = 1
    max_catch_up: int = DEFAULT_MAX_CATCH_UP
    jitter_s: float | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    paused: bool = False
    created_s: float = 0.0
    #: every fire at or before this instant has been dealt with (run or skipped)
    settled_until_s: float = 0.0
    last_fire_s: float | None = None
    next_fire_s: float | None = None
    fired: int = 0
    skipped_late: int = 0
    skipped_coalesced: int = 0
    skipped_max_instances: int = 0
    #: bumped by every change of the definition or of ``paused`` (see the Store contract)
    revision: int = 0
    #: an interval schedule whose first fire was not given: its phase is taken from
    #: the stored schedule of the same id, if any (not stored itself)
    anchor_implicit: bool = False

    @property
    def state(self) -> str:
        if self.paused:
            return "paused"
        return "finished" if self.next_fire_s is None else "active"

    def task_id_for(self, fire_s: float) -> str:
        return f"{self.id}@{round(fire_s * 1000)}"

    def info(self) -> dict[str, Any]:
        """A readable, JSON-friendly view for users and the CLI."""
        return {
            "id": self.id,
            "task_type": self.task_type,
            "trigger": self.trigger.to_dict(),
            "priority": self.priority.name,
            "state": self.state,
            "next_fire": _dt(self.next_fire_s),
            "last_fire": _dt(self.last_fire_s),
            "fired": self.fired,
            "skipped": {
                "late": self.skipped_late,
                "coalesced": self.skipped_coalesced,
                "max_instances": self.skipped_max_instances,
            },
            "misfire_grace_s": self.misfire_grace_s,
            "coalesce": self.coalesce,
            "max_instances": self.max_instances,
        }

    def to_record(self) -> dict[str, Any]:
        return {
            "version": SCHEDULE_RECORD_VERSION,
            "id": self.id,
            "task_type": self.task_type,
            "data": orjson.loads(self.data_json),
            "trigger": self.trigger.to_dict(),
            "priority": self.priority.name,
            "misfire_grace_s": self.misfire_grace_s,
            "coalesce": self.coalesce,
            "max_instances": self.max_instances,
            "max_catch_up": self.max_catch_up,
            "jitter_s": self.jitter_s,
            "task_options": self.task_options,
            "paused": self.paused,
            "created_s": self.created_s,
            "settled_until_s": self.settled_until_s,
            "last_fire_s": self.last_fire_s,
            "next_fire_s": self.next_fire_s,
            "fired": self.fired,
            "skipped_late": self.skipped_late,
            "skipped_coalesced": self.skipped_coalesced,
            "skipped_max_instances": self.skipped_max_instances,
            "revision": self.revision,
        }

    @classmethod
    def from_record(cls, record: Any) -> Schedule:
        if not isinstance(record, dict):
            raise TaskValidationError("schedule", record, "expected a JSON object")
        try:
            version = record.get("version", 1)
            if version > SCHEDULE_RECORD_VERSION:
                raise TaskValidationError("version", version, "newer than this asched")
            return cls(
                id=str(record["id"]),
                task_type=str(record["task_type"]),
                data_json=orjson.dumps(record.get("data") or {}),
                trigger=trigger_from_dict(record["trigger"]),
                priority=TaskPriority[record.get("priority", "MEDIUM")],
                misfire_grace_s=record.get("misfire_grace_s"),
                coalesce=bool(record.get("coalesce", True)),
                max_instances=int(record.get("max_instances", 1)),
                max_catch_up=int(record.get("max_catch_up", DEFAULT_MAX_CATCH_UP)),
                jitter_s=record.get("jitter_s"),
                task_options=dict(record.get("task_options") or {}),
                paused=bool(record.get("paused", False)),
                created_s=float(record.get("created_s", 0.0)),
                settled_until_s=float(record.get("settled_until_s", 0.0)),
                last_fire_s=record.get("last_fire_s"),
                next_fire_s=record.get("next_fire_s"),
                fired=int(record.get("fired", 0)),
                skipped_late=int(record.get("skipped_late", 0)),
                skipped_coalesced=int(record.get("skipped_coalesced", 0)),
                skipped_max_instances=int(record.get("skipped_max_instances", 0)),
                revision=int(record.get("revision", 0)),
            )
        except KeyError as missing:
            raise TaskValidationError(str(missing.args[0]), None, "missing") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, TaskValidationError):
                raise
            raise TaskValidationError("schedule", record.get("id"), str(exc)) from None

    def take_anchor(self, stored: Schedule) -> None:
        """Keep the phase of an interval schedule already stored under this id, when
        this one's first fire was derived from "now" (each process's own now)."""
        mine, theirs = self.trigger, stored.trigger
        if (
            self.anchor_implicit
            and isinstance(mine, IntervalTrigger)
            and isinstance(theirs, IntervalTrigger)
            and mine.seconds == theirs.seconds
        ):
            self.trigger = IntervalTrigger(mine.seconds, start=theirs.start, end=mine.end)

    def take_progress(self, stored: Schedule) -> None:
        """Carry on from the stored schedule this one replaces."""
        self.settled_until_s = stored.settled_until_s
        self.last_fire_s = stored.last_fire_s
        self.fired = stored.fired
        self.skipped_late = stored.skipped_late
        self.skipped_coalesced = stored.skipped_coalesced
        self.skipped_max_instances = stored.skipped_max_instances
        self.revision = stored.revision + 1

    def same_definition(self, other: Schedule) -> bool:
        mine, theirs = self.to_record(), other.to_record()
        keys = (
            "task_type",
            "data",
            "trigger",
            "priority",
            "misfire_grace_s",
            "coalesce",
            "max_instances",
            "max_catch_up",
            "jitter_s",
            "task_options",
        )
        return all(mine[k] == theirs[k] for k in keys)


def local_zone_name() -> str:
    """The machine's IANA zone name, or "UTC" when it cannot be told."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name and "/" in name:
        return name
    try:
        text = Path("/etc/timezone").read_text().strip()
        if text:
            return text
    except OSError:
        pass
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        return "UTC"
    marker = "zoneinfo/"
    return target.split(marker, 1)[1] if marker in target else "UTC"


def _dt(epoch_s: float | None) -> datetime | None:
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)
