"""The compact state record a SQLite store writes: what ``Task.to_dict`` holds, minus
what the reader can work out.

It is version 2 of the stored state (``{"version": 2, ...}``; version 1 is the
full :func:`asched.model.codec.encode_state` form, still read).  Against the full
form it leaves out every field at its default value, writes times as epoch
seconds (floats round-trip exactly) instead of ISO text, keeps the creation
time once, and keeps the history flat, as the task does:
``[at_s, to_state, reason, ...]``, each from-state being the previous entry's
to-state.  A task's default metadata is not written (its origin, if any, is);
metadata set on purpose is written whole.  A no-op task's record shrinks from
about 1 KB to about a third of that, and every insert and save writes it.

Key names are the full form's where both have the key (``lifecycle``,
``user_paused``, ``concurrency_key``, ``metadata.tags``): SQL may look at them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from asched.errors import TaskValidationError
from asched.model.metadata import Origin, TaskMetadata
from asched.model.states import TaskLifecycle, TaskPriority
from asched.model.validation import parse_timestamp

if TYPE_CHECKING:
    from asched.model.task import Task

logger = logging.getLogger(__name__)

COMPACT_VERSION = 2
_NAMES = {state.value: state.name for state in TaskLifecycle}
_STATES = TaskLifecycle.__members__
_PRIORITY_NAMES = {priority: priority.name for priority in TaskPriority}
_PRIORITIES = TaskPriority.__members__
_MEDIUM = TaskPriority.MEDIUM
_NUMBER = (int, float)
_EARLIEST_S = datetime.min.replace(tzinfo=UTC).timestamp()
_LATEST_S = datetime.max.replace(tzinfo=UTC).timestamp()


def encode_compact(task: Task) -> bytes:
    """The task's state (no data, no result) as a compact record.  Raises ValueError
    for a time the full form could not write either (outside years 1-9999, NaN)."""
    for moment in (task.created_s, task.due_s):
        if not _EARLIEST_S <= moment < _LATEST_S:
            raise ValueError(f"time {moment!r} is outside years 1-9999")
    history = list(task._history)
    history[1::3] = [_NAMES[state] for state in history[1::3]]
    record: dict[str, Any] = {
        "version": COMPACT_VERSION,
        "id": task.id,
        "type": task.type,
        "lifecycle": _NAMES[task.lifecycle],
        "created_s": task.created_s,
        "history": history,
    }
    if task.priority is not _MEDIUM:
        record["priority"] = _PRIORITY_NAMES[task.priority]
    if task.due_s != task.created_s:
        record["due_s"] = task.due_s
    _put_changed_fields(record, task)
    if task.dependencies:
        record["dependencies"] = task.dependencies
    meta = task._metadata
    if meta is not None:
        record["metadata"] = meta.fields()
    if task.origin is not None:
        record["origin"] = list(task.origin)
    try:
        return orjson.dumps(record)
    except TypeError:
        logger.warning("task %r: a value is not JSON-serialisable; storing its repr", task.id)
        if meta is not None:
            record["metadata"]["audit_trail"] = orjson.Fragment(
                orjson.dumps(meta.audit_trail, default=repr, option=orjson.OPT_NON_STR_KEYS)
            )
        return orjson.dumps(record)


def _put_changed_fields(record: dict[str, Any], task: Task) -> None:
    """Each field only when it is not at its default (the reader's defaults), spelled
    out: a loop of getattr calls over a table cost more than the rest of the encoding."""
    if task.executor_type != "async":
        record["executor_type"] = task.executor_type
    value: Any = task.retries
    if value != 0 or type(value) is not int:
        record["retries"] = value
    value = task.max_retries
    if value != 3 or type(value) is not int:
        record["max_retries"] = value
    value = task.backoff_factor
    if value != 2.0 or type(value) is not float:
        record["backoff_factor"] = value
    if task.timeout_s is not None:
        record["timeout"] = task.timeout_s
    if task.concurrency_key is not None:
        record["concurrency_key"] = task.concurrency_key
    if task.idempotency_key is not None:
        record["idempotency_key"] = task.idempotency_key
    if task.user_paused is not False:
        record["user_paused"] = task.user_paused
    if task.wait_reason is not None:
        record["wait_reason"] = task.wait_reason
    if task.error is not None:
        record["error"] = task.error
    if task.started_s is not None:
        record["started_s"] = task.started_s
    if task.finished_s is not None:
        record["finished_s"] = task.finished_s


def is_compact(record: dict[str, Any]) -> bool:
    return record.get("version") == COMPACT_VERSION


def checked_data(stored: bytes) -> bytes:
    """``stored`` as is, once it is known to be a JSON object."""
    if stored == b"{}":
        return stored
    try:
        data = orjson.loads(stored)
    except orjson.JSONDecodeError as exc:
        raise TaskValidationError("data", stored, f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise TaskValidationError("data", data, "expected a JSON object")
    return stored


def decode_compact(record: dict[str, Any], data_json: bytes, cls: type[Task]) -> Task:
    """A task from a compact record (its data and result already split out: ``data_json``
    as stored, the result under ``"result"``); names the first bad field."""
    read = _Fields(record)
    created_s = read.number("created_s")
    task = cls(
        read.text("id"),
        read.text("type"),
        data_json,
        read.priority(),
        created_s=created_s,
        due_s=read.number("due_s", created_s),
        executor_type=read.text("executor_type", "async"),
        max_retries=read.integer("max_retries", 3),
        backoff_factor=read.number("backoff_factor", 2.0),
        timeout_s=read.number("timeout", None),
        dependencies=read.texts("dependencies"),
        concurrency_key=read.text("concurrency_key", None),
        idempotency_key=read.text("idempotency_key", None),
        metadata=read.metadata(),
    )
    if not task.id:
        raise TaskValidationError("id", task.id, "must not be empty")
    task.lifecycle = read.state(record.get("lifecycle"), "lifecycle")
    task.started_s = read.number("started_s", None)
    task.finished_s = read.number("finished_s", None)
    task.retries = read.integer("retries", 0)
    task.user_paused = read.flag("user_paused")
    task.wait_reason = read.text("wait_reason", None)
    task.result = record.get("result")
    task.error = read.text("error", None)
    task._history = read.history()
    task.origin = read.origin()
    return task


_REQUIRED: Any = object()


class _Fields:
    """Typed reads of one compact record; a bad value raises, naming its key."""

    __slots__ = ("record",)

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def _value(self, key: str, default: Any) -> Any:
        value = self.record.get(key, default)
        if value is _REQUIRED:
            raise TaskValidationError(key, None, "missing")
        return value

    def text(self, key: str, default: Any = _REQUIRED) -> Any:
        value = self._value(key, default)
        if type(value) is not str and not (value is None and default is None):
            raise TaskValidationError(key, value, "expected a string")
        return value

    def number(self, key: str, default: Any = _REQUIRED) -> Any:
        value = self._value(key, default)
        if value is None and default is None:
            return None
        if type(value) not in _NUMBER:
            raise TaskValidationError(key, value, "expected a number")
        return float(value)

    def integer(self, key: str, default: int) -> int:
        value = self._value(key, default)
        if type(value) is not int:
            raise TaskValidationError(key, value, "expected an integer")
        return value

    def flag(self, key: str) -> bool:
        value = self._value(key, False)
        if type(value) is not bool:
            raise TaskValidationError(key, value, "expected true or false")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._value(key, ())
        if type(value) not in (list, tuple) or not all(type(v) is str for v in value):
            raise TaskValidationError(key, value, "expected a list of strings")
        return tuple(value)

    def priority(self) -> TaskPriority:
        value = self.record.get("priority")
        if value is None:
            return _MEDIUM
        found = _PRIORITIES.get(value) if type(value) is str else None
        if found is None:
            raise TaskValidationError("priority", value, "unknown priority")
        return found

    @staticmethod
    def state(value: Any, key: str) -> TaskLifecycle:
        found = _STATES.get(value) if type(value) is str else None
        if found is None:
            raise TaskValidationError(key, value, "unknown lifecycle state")
        return found

    def history(self) -> tuple[Any, ...]:
        flat = self._value("history", [])
        if type(flat) is not list or len(flat) % 3:
            raise TaskValidationError("history", flat, "expected [at_s, state, reason, ...]")
        for i in range(0, len(flat), 3):
            at, reason = flat[i], flat[i + 2]
            if type(at) not in _NUMBER or not (reason is None or type(reason) is str):
                raise TaskValidationError("history", flat[i : i + 3], "expected at_s, reason")
            flat[i + 1] = self.state(flat[i + 1], "history")
        return tuple(flat)

    def metadata(self) -> TaskMetadata | None:
        return read_metadata(self.record.get("metadata"), None)

    def origin(self) -> Origin | None:
        return read_origin(self.record.get("origin"), "origin")


def read_metadata(meta: Any, created_s: float | None) -> TaskMetadata | None:
    """A record's metadata object (None: the task has none).  Its ``created_at`` is
    required unless ``created_s`` stands in for it; names the first bad field."""
    if meta is None:
        return None
    if type(meta) is not dict:
        raise TaskValidationError("metadata", meta, "expected a JSON object")
    tags, trail = meta.get("tags", []), meta.get("audit_trail", [])
    if type(tags) is not list or not all(type(t) is str for t in tags):
        raise TaskValidationError("metadata.tags", tags, "expected a list of strings")
    if type(trail) is not list:
        raise TaskValidationError("metadata.audit_trail", trail, "expected a list")
    created = meta.get("created_at")
    if created is not None or created_s is None:
        created_s = parse_timestamp(created, "metadata.created_at")
    return TaskMetadata(
        created_at=datetime.fromtimestamp(created_s, UTC),
        created_by=str(meta.get("created_by", "system")),
        source_ip=meta.get("source_ip"),
        source_component=meta.get("source_component"),
        tags=list(tags),
        audit_trail=list(trail),
    )


def read_origin(raw: Any, key: str) -> Origin | None:
    """Who scheduled the task, as stored under ``key`` (None: not recorded)."""
    if raw is None:
        return None
    if type(raw) is not list or len(raw) != len(Origin._fields):
        raise TaskValidationError(key, raw, "expected [actor, module, ...]")
    return Origin(*raw)
