"""The Task: one unit of work, mutated only by the scheduler's loop.

A task's payload is kept as JSON bytes (orjson) from the moment it is accepted:
that validates it once, isolates the task from later mutation of the caller's
dict, and is exactly what a durable store writes.  Times are float epoch
seconds inside (``*_s``) and timezone-aware UTC datetimes at the API.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from itertools import count
from typing import Any

import orjson

from asched.errors import InvalidTransitionError, TaskValidationError
from asched.model.codec import decode_record, encode_record, record_dict
from asched.model.metadata import TaskMetadata
from asched.model.states import (
    TERMINAL_STATES,
    TRANSITIONS,
    TaskLifecycle,
    TaskPriority,
    Transition,
)

_id_prefix = os.urandom(5).hex()
_id_counter = count(1)


def new_task_id() -> str:
    """A process-unique random prefix plus a counter: unique across processes, cheap."""
    return f"{_id_prefix}{next(_id_counter)}"


def to_utc_datetime(epoch_s: float | None) -> datetime | None:
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)


_EMPTY_JSON_OBJECT = b"{}"
_CREATED = TaskLifecycle.CREATED


class Task:
    """One unit of work.  Mutated only by the scheduler's loop, through :meth:`transition`."""

    __slots__ = (
        "_handle",
        "_history",
        "_metadata",
        "backoff_factor",
        "concurrency_key",
        "created_s",
        "data_json",
        "dependencies",
        "due_s",
        "error",
        "executor_type",
        "finished_s",
        "id",
        "idempotency_key",
        "lifecycle",
        "max_retries",
        "origin",
        "priority",
        "result",
        "retries",
        "started_s",
        "timeout_s",
        "type",
        "user_paused",
        "wait_reason",
    )

    def __init__(
        self,
        id: str,
        type: str,
        data_json: bytes = _EMPTY_JSON_OBJECT,
        priority: TaskPriority = TaskPriority.MEDIUM,
        created_s: float = 0.0,
        due_s: float | None = None,
        executor_type: str = "async",
        max_retries: int = 3,
        backoff_factor: float = 2.0,
        timeout_s: float | None = None,
        dependencies: tuple[str, ...] = (),
        concurrency_key: str | None = None,
        idempotency_key: str | None = None,
        metadata: TaskMetadata | None = None,
    ) -> None:
        self.id = id
        self.type = type
        self.data_json = data_json
        self.priority = priority
        self.lifecycle = _CREATED
        self.created_s = created_s
        self.due_s = created_s if due_s is None else due_s
        self.started_s: float | None = None
        self.finished_s: float | None = None
        self.executor_type = executor_type
        self.retries = 0
        self.max_retries = max_retries
        self.backoff_factor = backoff_factor
        self.timeout_s = timeout_s
        self.dependencies = dependencies
        self.concurrency_key = concurrency_key
        self.idempotency_key = idempotency_key
        self.result: Any = None
        self.error: str | None = None
        self.user_paused = False
        # Why a due task is not running yet (a rate limit, an open circuit), if it waits.
        self.wait_reason: str | None = None
        self._metadata = metadata
        # Who scheduled it and from where (asched.middleware.audit.Origin), shared
        # by every task scheduled from one call site; None when not audited.
        self.origin: Any = None
        # The engine's handle while armed (a wheel timer) or running (an asyncio task).
        self._handle: Any = None
        # Flat (at_s, to_state, reason, ...); the from-state is the previous entry's
        # to-state (CREATED for the first), so it is not stored twice.  A tuple, not
        # a list: it is small, and a pending task should cost as little as possible.
        self._history: tuple[Any, ...] = ()

    # -- lifecycle ---------------------------------------------------------------

    def transition(self, target: TaskLifecycle, now_s: float, reason: str | None = None) -> None:
        """Move to ``target`` if the table allows it, recording the change."""
        if target not in TRANSITIONS[self.lifecycle]:
            raise InvalidTransitionError(self.id, self.lifecycle, target)
        self.lifecycle = target
        self._history += (now_s, target, reason)

    @property
    def history(self) -> list[Transition]:
        out: list[Transition] = []
        previous = TaskLifecycle.CREATED
        raw = self._history
        for i in range(0, len(raw), 3):
            state = TaskLifecycle(raw[i + 1])
            at = datetime.fromtimestamp(raw[i], UTC)
            out.append(Transition(at, previous, state, raw[i + 2]))
            previous = state
        return out

    @property
    def is_terminal(self) -> bool:
        return self.lifecycle in TERMINAL_STATES

    # -- views -------------------------------------------------------------------

    @property
    def data(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.data_json)
        return value

    @property
    def metadata(self) -> TaskMetadata:
        if self._metadata is None:
            self._metadata = TaskMetadata(created_at=datetime.fromtimestamp(self.created_s, UTC))
        return self._metadata

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.created_s, UTC)

    @property
    def scheduled_for(self) -> datetime:
        return datetime.fromtimestamp(self.due_s, UTC)

    @property
    def started_at(self) -> datetime | None:
        return to_utc_datetime(self.started_s)

    @property
    def completed_at(self) -> datetime | None:
        return to_utc_datetime(self.finished_s)

    def __repr__(self) -> str:
        return (
            f"Task(id={self.id!r}, type={self.type!r}, priority={self.priority.name}, "
            f"lifecycle={self.lifecycle.name}, scheduled_for={self.scheduled_for.isoformat()})"
        )

    def copy(self) -> Task:
        """A detached snapshot, safe to hand to code outside the loop."""
        clone = Task.__new__(Task)
        for name in Task.__slots__:
            setattr(clone, name, getattr(self, name))
        clone._handle = None
        if self._metadata is not None:
            meta = self._metadata
            clone._metadata = TaskMetadata(
                meta.created_at,
                meta.created_by,
                meta.source_ip,
                meta.source_component,
                list(meta.tags),
                [dict(entry) for entry in meta.audit_trail],
            )
        return clone

    # -- serialisation -----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The spec's keys, plus asched's own; JSON-safe (see :mod:`asched.model.codec`)."""
        return record_dict(self)

    def to_json(self) -> bytes:
        return encode_record(self)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Task:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise TaskValidationError("json", raw, f"not valid JSON ({exc})") from None
        return cls.from_dict(value)

    @classmethod
    def from_dict(cls, data: Any) -> Task:
        """Build a task from :meth:`to_dict` output, naming the first bad field."""
        return decode_record(data, cls)
