"""Reading task records back fast: the exact shape ``asched.stores.records`` writes.

A record of that shape (this version, every key present with the type the
encoder gives it) is read here without the per-field checks of
:meth:`Task.from_dict`; anything else -- an older or hand-edited record --
goes through :meth:`Task.from_dict`, which validates it and names a bad
field.  A test holds both readers to the same result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from asched.model import (
    RECORD_VERSION,
    Task,
    TaskLifecycle,
    TaskMetadata,
    TaskPriority,
    encode_json,
)
from asched.model.metadata import Origin

_STATES = TaskLifecycle.__members__
_PRIORITIES = TaskPriority.__members__
_fromiso = datetime.fromisoformat
_NUMBER = (int, float)


def decode_record(raw: bytes, data: bytes | None = None, result: bytes | None = None) -> Task:
    """The task stored as its record (the state), its data (None: ``{}``, or inside
    the record as an older asched wrote it) and its result (None: none, or inside
    the record); raises TaskValidationError when they are not one."""
    record = orjson.loads(raw)
    if type(record) is dict:
        if data is not None:
            record["data"] = orjson.loads(data)
        elif "data" not in record:
            record["data"] = {}
        if result is not None:
            record["result"] = orjson.loads(result)
        elif "result" not in record:
            record["result"] = None
    try:
        return _read(record, data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return Task.from_dict(record)


def _time(text: Any) -> float:
    if type(text) is not str:
        raise TypeError(text)
    return _fromiso(text).timestamp()


def _optional_time(text: Any) -> float | None:
    return None if text is None else _time(text)


def _optional(value: Any, kind: type) -> Any:
    if value is not None and type(value) is not kind:
        raise TypeError(value)
    return value


def _read(record: dict[str, Any], data_json: bytes | None) -> Task:
    if record["version"] != RECORD_VERSION or type(record["id"]) is not str or not record["id"]:
        raise ValueError("not the current record shape")
    data = record["data"]
    backoff, timeout = record["backoff_factor"], record["timeout"]
    retries, max_retries = record["retries"], record["max_retries"]
    if (
        type(data) is not dict
        or type(record["type"]) is not str
        or type(record["executor_type"]) is not str
        or type(retries) is not int
        or type(max_retries) is not int
        or type(backoff) not in _NUMBER
        or (timeout is not None and type(timeout) not in _NUMBER)
        or type(record["user_paused"]) is not bool
    ):
        raise TypeError("a field has an unexpected type")
    dependencies = record["dependencies"]
    if type(dependencies) is not list or not all(type(d) is str for d in dependencies):
        raise TypeError("dependencies")
    created_s = _time(record["created_at"])
    task = Task(
        record["id"],
        record["type"],
        data_json if data_json is not None else encode_json(data, "data"),
        _PRIORITIES[record["priority"]],
        created_s=created_s,
        due_s=_time(record["scheduled_for"]),
        executor_type=record["executor_type"],
        max_retries=max_retries,
        backoff_factor=float(backoff),
        timeout_s=None if timeout is None else float(timeout),
        dependencies=tuple(dependencies),
        concurrency_key=_optional(record["concurrency_key"], str),
        idempotency_key=_optional(record["idempotency_key"], str),
        metadata=_metadata(record["metadata"], record["created_at"]),
    )
    task.lifecycle = _STATES[record["lifecycle"]]
    task.started_s = _optional_time(record["started_at"])
    task.finished_s = _optional_time(record["completed_at"])
    task.retries = retries
    task.user_paused = record["user_paused"]
    task.wait_reason = _optional(record["wait_reason"], str)
    task.result = record["result"]
    task.error = _optional(record["error"], str)
    task._history = _history(record["history"])
    origin = record["metadata"].get("origin")
    if origin is not None:
        if type(origin) is not list or len(origin) != len(Origin._fields):
            raise TypeError("metadata.origin")
        task.origin = Origin(*origin)
    return task


def _metadata(meta: dict[str, Any], created_at: str) -> TaskMetadata | None:
    """None for the default metadata (what a task without any has, built on demand)."""
    tags, trail = meta["tags"], meta["audit_trail"]
    if (
        not tags
        and not trail
        and meta["created_by"] == "system"
        and meta["source_ip"] is None
        and meta["source_component"] is None
        and meta["created_at"] == created_at
    ):
        return None
    if type(tags) is not list or not all(type(t) is str for t in tags) or type(trail) is not list:
        raise TypeError("metadata")
    return TaskMetadata(
        created_at=datetime.fromtimestamp(_time(meta["created_at"]), UTC),
        created_by=str(meta["created_by"]),
        source_ip=meta["source_ip"],
        source_component=meta["source_component"],
        tags=tags,
        audit_trail=trail,
    )


def _history(entries: list[Any]) -> tuple[Any, ...]:
    flat: list[Any] = []
    for at, _, to, reason in entries:
        flat += (_time(at), _STATES[to], reason)
    return tuple(flat)
