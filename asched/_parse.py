"""Strict reading of task records (dicts from JSON) into :class:`~asched.model.Task`.

Every problem raises :class:`TaskValidationError` naming the field, so a bad
record in a store or a bad API payload is reported precisely.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from asched.errors import TaskValidationError
from asched.model import (
    RECORD_VERSION,
    Task,
    TaskLifecycle,
    TaskMetadata,
    TaskPriority,
    encode_json,
)

_MISSING = object()
_PRIORITIES = tuple(TaskPriority)


def parse_priority(value: Any, field: str = "priority") -> TaskPriority:
    """Accept a TaskPriority, its int value (0-4) or its name (any case)."""
    if isinstance(value, TaskPriority):
        return value
    if type(value) is int and 0 <= value < len(_PRIORITIES):
        return _PRIORITIES[value]
    if isinstance(value, bool):
        raise TaskValidationError(field, value, "expected a TaskPriority, an int 0-4 or a name")
    if isinstance(value, int):
        try:
            return TaskPriority(value)
        except ValueError:
            raise TaskValidationError(field, value, "out of range 0-4") from None
    if isinstance(value, str):
        try:
            return TaskPriority[value.strip().upper()]
        except KeyError:
            names = ", ".join(p.name for p in TaskPriority)
            raise TaskValidationError(field, value, f"unknown priority; one of {names}") from None
    raise TaskValidationError(field, value, "expected a TaskPriority, an int 0-4 or a name")


def parse_lifecycle(value: Any, field: str = "lifecycle") -> TaskLifecycle:
    if isinstance(value, TaskLifecycle):
        return value
    if isinstance(value, str):
        try:
            return TaskLifecycle[value.strip().upper()]
        except KeyError:
            pass
    names = ", ".join(s.name for s in TaskLifecycle)
    raise TaskValidationError(field, value, f"unknown lifecycle state; one of {names}")


def parse_timestamp(value: Any, field: str) -> float:
    """An ISO-8601 string or aware datetime to epoch seconds; naive is read as UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise TaskValidationError(field, value, "not an ISO-8601 date-time") from None
    if isinstance(value, datetime):
        moment: datetime = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.timestamp()
    raise TaskValidationError(field, value, "expected an ISO-8601 date-time string")


class TaskDictReader:
    """Reads one task record; ``read()`` returns the Task or raises."""

    def __init__(self, record: Any) -> None:
        if not isinstance(record, dict):
            raise TaskValidationError("task", record, "expected a JSON object")
        self.record = record

    def _get(self, key: str, default: Any = _MISSING) -> Any:
        value = self.record.get(key, default)
        if value is _MISSING:
            raise TaskValidationError(key, None, "missing")
        return value

    def _typed(self, key: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is None and default is None:
            return None
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise TaskValidationError(key, value, f"expected {_kind_name(kind)}")
        if not isinstance(value, kind):
            raise TaskValidationError(key, value, f"expected {_kind_name(kind)}")
        return value

    def _optional_time(self, key: str) -> float | None:
        value = self.record.get(key)
        return None if value is None else parse_timestamp(value, key)

    def read(self) -> Task:
        version = self._typed("version", int, RECORD_VERSION)
        if version > RECORD_VERSION:
            raise TaskValidationError("version", version, f"newer than {RECORD_VERSION}")
        task_id = self._typed("id", str)
        if not task_id:
            raise TaskValidationError("id", task_id, "must not be empty")
        data = self._get("data")
        if not isinstance(data, dict):
            raise TaskValidationError("data", data, "expected a JSON object")
        created_s = parse_timestamp(self._get("created_at"), "created_at")
        due = self.record.get("scheduled_for")
        task = Task(
            task_id,
            self._typed("type", str),
            encode_json(data, "data"),
            parse_priority(self._get("priority")),
            created_s=created_s,
            due_s=None if due is None else parse_timestamp(due, "scheduled_for"),
            executor_type=self._typed("executor_type", str, "async"),
            max_retries=self._typed("max_retries", int, 3),
            backoff_factor=float(self._typed("backoff_factor", (int, float), 2.0)),
            timeout_s=self._optional_number("timeout"),
            dependencies=tuple(self._string_list("dependencies")),
            concurrency_key=self._typed("concurrency_key", str, None),
            idempotency_key=self._typed("idempotency_key", str, None),
            metadata=self._metadata(created_s),
        )
        task.lifecycle = parse_lifecycle(self._get("lifecycle"))
        task.started_s = self._optional_time("started_at")
        task.finished_s = self._optional_time("completed_at")
        task.retries = self._typed("retries", int, 0)
        task.user_paused = self._typed("user_paused", bool, False)
        task.wait_reason = self._typed("wait_reason", str, None)
        task.result = self.record.get("result")
        task.error = self._typed("error", str, None)
        task._history = tuple(self._history())
        return task

    def _optional_number(self, key: str) -> float | None:
        value = self._typed(key, (int, float), None)
        return None if value is None else float(value)

    def _string_list(self, key: str) -> list[str]:
        value = self._typed(key, list, [])
        for item in value:
            if not isinstance(item, str):
                raise TaskValidationError(key, value, "expected a list of strings")
        return list(value)

    def _metadata(self, created_s: float) -> TaskMetadata | None:
        meta = self.record.get("metadata")
        if meta is None:
            return None
        if not isinstance(meta, dict):
            raise TaskValidationError("metadata", meta, "expected a JSON object")
        created = meta.get("created_at")
        tags = meta.get("tags", [])
        trail = meta.get("audit_trail", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise TaskValidationError("metadata.tags", tags, "expected a list of strings")
        if not isinstance(trail, list):
            raise TaskValidationError("metadata.audit_trail", trail, "expected a list")
        return TaskMetadata(
            created_at=datetime.fromtimestamp(
                created_s if created is None else parse_timestamp(created, "metadata.created_at"),
                UTC,
            ),
            created_by=str(meta.get("created_by", "system")),
            source_ip=meta.get("source_ip"),
            source_component=meta.get("source_component"),
            tags=list(tags),
            audit_trail=list(trail),
        )

    def _history(self) -> list[Any]:
        raw = self.record.get("history") or []
        if not isinstance(raw, list):
            raise TaskValidationError("history", raw, "expected a list")
        flat: list[Any] = []
        for entry in raw:
            if not isinstance(entry, list) or len(entry) != 4:
                raise TaskValidationError("history", entry, "expected [at, from, to, reason]")
            at = parse_timestamp(entry[0], "history.at")
            state = parse_lifecycle(entry[2], "history.to")
            flat += (at, state, entry[3])
        return flat


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {"str": "a string", "int": "an integer", "float": "a number", "list": "a list"}
    return " or ".join(names.get(k.__name__, k.__name__) for k in kinds)
