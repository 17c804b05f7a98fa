"""Turning ``schedule_recurring`` arguments into a validated :class:`Schedule`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from asched.core.bounds import MAX_INTERVAL_S, check_seconds
from asched.core.checks import require_int
from asched.core.triggers import CronTrigger, IntervalTrigger, Trigger
from asched.engine.intake import SPEC_FIELDS, TaskIntake
from asched.engine.recurring import Schedule, local_zone_name
from asched.errors import TaskValidationError, UnknownOptionError
from asched.model import encode_json, new_task_id
from asched.model.validation import parse_priority

#: task options a schedule passes on to every task it creates
TASK_OPTIONS = SPEC_FIELDS - {
    "task_type",
    "task_data",
    "execution_time",
    "priority",
    "delay",
    "dependencies",
    "idempotency_key",
    "task_id",
}


def build_schedule(
    intake: TaskIntake,
    now_s: float,
    default_zone: str | None,
    task_type: str,
    task_data: Mapping[str, Any] | None,
    *,
    cron: str | None,
    interval: float | timedelta | None,
    start: datetime | None,
    end: datetime | None,
    timezone: str | None,
    priority: Any,
    misfire_grace: float | timedelta | None,
    coalesce: bool,
    max_instances: int,
    jitter: float | timedelta | None,
    schedule_id: str | None,
    task_options: dict[str, Any],
) -> Schedule:
    _check_task_side(intake, now_s, task_type, task_data, priority, task_options)
    if (cron is None) == (interval is None):
        raise TaskValidationError("cron", cron, "give exactly one of cron or interval")
    if not isinstance(coalesce, bool):
        raise TaskValidationError("coalesce", coalesce, "expected True or False")
    require_int("max_instances", max_instances, minimum=1)
    if schedule_id is not None and (
        not isinstance(schedule_id, str) or not schedule_id or "@" in schedule_id
    ):
        raise TaskValidationError("schedule_id", schedule_id, "a non-empty string without '@'")
    zone = default_zone if timezone is None else timezone
    trigger = _trigger(cron, interval, start, end, zone, now_s)
    return Schedule(
        id=schedule_id or f"s{new_task_id()}",
        task_type=task_type,
        data_json=b"{}" if task_data is None else encode_json(task_data, "task_data"),
        trigger=trigger,
        priority=parse_priority(priority),
        misfire_grace_s=_seconds("misfire_grace", misfire_grace, allow_none=True),
        coalesce=coalesce,
        max_instances=max_instances,
        jitter_s=_seconds("jitter", jitter, allow_none=True),
        task_options=dict(task_options),
        created_s=now_s,
        settled_until_s=now_s,
        anchor_implicit=interval is not None and start is None,
    )


def _check_task_side(
    intake: TaskIntake,
    now_s: float,
    task_type: str,
    task_data: Mapping[str, Any] | None,
    priority: Any,
    task_options: dict[str, Any],
) -> None:
    """The options every fire's task gets, checked exactly as a one-off task's are."""
    unknown = set(task_options) - TASK_OPTIONS
    if unknown:
        name = sorted(unknown)[0]
        raise UnknownOptionError(name, task_options[name], TASK_OPTIONS)
    if task_data is not None and not isinstance(task_data, dict):
        raise TaskValidationError("task_data", task_data, "expected a dict (a JSON object)")
    intake.build(now_s, task_type, task_data, None, priority, **task_options)


def _trigger(
    cron: str | None,
    interval: float | timedelta | None,
    start: datetime | None,
    end: datetime | None,
    zone: str | None,
    now_s: float,
) -> Trigger:
    for name, value in (("start", start), ("end", end)):
        if value is not None and not isinstance(value, datetime):
            raise TaskValidationError(name, value, "expected a datetime")
    if cron is not None:
        if not isinstance(cron, str):
            raise TaskValidationError("cron", cron, "expected a cron expression string")
        return CronTrigger(cron, local_zone_name() if zone is None else zone, start=start, end=end)
    seconds = _seconds("interval", interval, allow_none=False)
    assert seconds is not None
    if not seconds > 0:
        raise TaskValidationError("interval", interval, "must be > 0")
    first = start.timestamp() if start is not None else now_s + seconds
    return IntervalTrigger(seconds, start=first, end=end)


def _seconds(name: str, value: Any, *, allow_none: bool) -> float | None:
    if value is None:
        if allow_none:
            return None
        raise TaskValidationError(name, value, "missing")
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return check_seconds(TaskValidationError, name, value, minimum=0.0, maximum=MAX_INTERVAL_S)
