"""Turning ``schedule_task`` arguments into a validated :class:`Task`.

Everything here is checked before anything is stored, so a bad argument
raises a :class:`TaskValidationError` naming it and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from asched.config import SchedulerConfig
from asched.core.bounds import MAX_EPOCH_S, MIN_EPOCH_S
from asched.engine.registry import (
    EXECUTOR_NAMES,
    Registry,
    check_backoff,
    check_retries,
    check_timeout,
)
from asched.errors import TaskValidationError, UnknownOptionError, UnknownTaskTypeError
from asched.model import Task, TaskMetadata, TaskPriority, encode_json, new_task_id
from asched.model.validation import parse_priority, require_text

#: A task type's executor, max_retries, backoff_factor and timeout_s.
_Defaults = tuple[str, int, float, float | None]

#: The keyword names a task spec (``schedule_task`` / ``schedule_many``) accepts.
SPEC_FIELDS = frozenset(
    {
        "task_type",
        "task_data",
        "execution_time",
        "priority",
        "delay",
        "dependencies",
        "executor",
        "timeout",
        "max_retries",
        "backoff_factor",
        "concurrency_key",
        "idempotency_key",
        "tags",
        "task_id",
        "created_by",
    }
)


class TaskIntake:
    """Validates task specs against the config and the registry."""

    def __init__(self, config: SchedulerConfig, registry: Registry) -> None:
        self._config = config
        self._registry = registry
        self._zone: tzinfo | None = None if config.timezone is None else ZoneInfo(config.timezone)
        # Per task type: (executor, max_retries, backoff_factor, timeout_s) after
        # applying the config's defaults; registrations only ever add types.
        self._defaults: dict[str, _Defaults] = {}

    def _resolve_defaults(self, task_type: Any) -> _Defaults:
        require_text("task_type", task_type)
        definition = self._registry.get(task_type)
        config = self._config
        if definition is None:
            if config.strict_task_types:
                raise UnknownTaskTypeError(task_type, self._registry.names())
            # No local handler: not cached, a handler may be registered later.
            return (
                "async",
                config.default_max_retries,
                config.default_backoff_factor,
                config.default_timeout_s,
            )
        if definition.executor == "process":
            self._registry.verify_importable(task_type)
        resolved = (
            definition.executor,
            _pick(definition.max_retries, config.default_max_retries),
            float(_pick(definition.backoff_factor, config.default_backoff_factor)),
            _pick(definition.timeout_s, config.default_timeout_s),
        )
        self._defaults[task_type] = resolved
        return resolved

    def _check_executor(self, task_type: str, executor: Any) -> None:
        if executor not in EXECUTOR_NAMES:
            raise TaskValidationError(
                "executor", executor, f"unknown executor; one of {', '.join(EXECUTOR_NAMES)}"
            )
        definition = self._registry.get(task_type)
        if definition is not None and (executor == "async") != (definition.executor == "async"):
            raise TaskValidationError(
                "executor", executor, f"incompatible with the {task_type!r} handler"
            )

    def build(
        self,
        now_s: float,
        task_type: str,
        task_data: Mapping[str, Any] | None = None,
        execution_time: datetime | None = None,
        priority: TaskPriority | int | str = TaskPriority.MEDIUM,
        *,
        delay: timedelta | float | None = None,
        dependencies: Any = (),
        executor: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff_factor: float | None = None,
        concurrency_key: str | None = None,
        idempotency_key: str | None = None,
        tags: Any = (),
        task_id: str | None = None,
        created_by: str | None = None,
    ) -> Task:
        defaults = self._defaults.get(task_type) if type(task_type) is str else None
        if defaults is None:
            defaults = self._resolve_defaults(task_type)
        if type(priority) is not TaskPriority:
            priority = parse_priority(priority)
        if type(task_data) is dict:
            data_json = encode_json(task_data, "task_data")
        else:
            data_json = b"{}" if task_data is None else _encode_data(task_data)
        if delay is not None:
            due_s = self._due(now_s, execution_time, delay)
        else:
            due_s = now_s if execution_time is None else self._due_at(execution_time)
        if executor is None and max_retries is None and backoff_factor is None and timeout is None:
            executor, max_retries, backoff_factor, timeout = defaults
        else:
            executor, max_retries, backoff_factor, timeout = self._attempt_options(
                task_type, defaults, executor, max_retries, backoff_factor, timeout
            )
        task_id = new_task_id() if task_id is None else require_text("task_id", task_id)
        if concurrency_key is not None or idempotency_key is not None:
            _check_keys(concurrency_key, idempotency_key)
        # Positional on purpose: this runs for every task, and keywords cost.
        return Task(
            task_id,
            task_type,
            data_json,
            priority,
            now_s,
            due_s,
            executor,
            max_retries,
            backoff_factor,
            timeout,
            _string_tuple("dependencies", dependencies) if dependencies else (),
            concurrency_key,
            idempotency_key,
            _metadata(now_s, tags, created_by) if tags or created_by else None,
        )

    def _attempt_options(
        self,
        task_type: str,
        defaults: _Defaults,
        executor: str | None,
        max_retries: int | None,
        backoff_factor: float | None,
        timeout: float | None,
    ) -> _Defaults:
        """The task's executor, max_retries, backoff_factor and timeout: each given one
        checked, the type's default for the rest."""
        default_executor, default_retries, default_backoff, default_timeout = defaults
        if executor is None:
            executor = default_executor
        else:
            self._check_executor(task_type, executor)
        if max_retries is None:
            max_retries = default_retries
        else:
            check_retries(max_retries)
        if backoff_factor is None:
            backoff_factor = default_backoff
        else:
            check_backoff(backoff_factor)
            backoff_factor = float(backoff_factor)
        if timeout is None:
            timeout = default_timeout
        else:
            check_timeout(timeout)
            timeout = float(timeout)
        return executor, max_retries, backoff_factor, timeout

    def window_of(self, now_s: float, window: Any) -> tuple[float, float]:
        """A ``(not_before, not_after)`` pair of datetimes as epoch seconds."""
        if (
            not isinstance(window, tuple | list)
            or len(window) != 2
            or not all(isinstance(w, datetime) for w in window)
        ):
            raise TaskValidationError(
                "window", window, "expected (not_before, not_after) datetimes"
            )
        start, end = (self._due(now_s, w, None) for w in window)
        if end < start:
            raise TaskValidationError("window", window, "not_after is before not_before")
        return start, end

    def _due_at(self, execution_time: Any) -> float:
        """``execution_time`` (no delay given) as epoch seconds, within range."""
        if type(execution_time) is datetime and execution_time.tzinfo is not None:
            try:  # the common case of _epoch_s, inline: an aware datetime
                epoch_s = execution_time.timestamp()
            except (ValueError, OverflowError, OSError):
                raise TaskValidationError("execution_time", execution_time, _OUT_OF_RANGE) from None
        else:
            epoch_s = self._epoch_s(execution_time)
        if not MIN_EPOCH_S <= epoch_s <= MAX_EPOCH_S:  # False for NaN too
            raise TaskValidationError("execution_time", execution_time, _OUT_OF_RANGE)
        return epoch_s

    def _due(
        self, now_s: float, execution_time: datetime | None, delay: timedelta | float | None
    ) -> float:
        if execution_time is not None:
            if delay is not None:
                raise TaskValidationError("delay", delay, "give execution_time or delay, not both")
            return self._due_at(execution_time)
        if delay is None:
            return now_s
        if isinstance(delay, timedelta):
            seconds = delay.total_seconds()
        elif isinstance(delay, int | float) and not isinstance(delay, bool):
            seconds = float(delay)
        else:
            raise TaskValidationError("delay", delay, "expected seconds or a timedelta")
        if not seconds >= 0:
            raise TaskValidationError("delay", delay, "must not be negative")
        return _instant("delay", delay, now_s + seconds)

    def _epoch_s(self, execution_time: Any) -> float:
        if not isinstance(execution_time, datetime):
            raise TaskValidationError(
                "execution_time", execution_time, "expected a datetime (aware, or naive local)"
            )
        try:
            if execution_time.tzinfo is not None:
                return execution_time.timestamp()
            # A naive time is wall-clock time in the configured zone (default: local).
            if self._zone is None:
                return execution_time.astimezone().timestamp()
            return execution_time.replace(tzinfo=self._zone).timestamp()
        except (ValueError, OverflowError, OSError):
            raise TaskValidationError("execution_time", execution_time, _OUT_OF_RANGE) from None


_OUT_OF_RANGE = "outside the instants asched accepts (year 1 to 9998)"


def _instant(field: str, value: Any, epoch_s: float) -> float:
    """A due time within the range the stores and triggers accept."""
    if not MIN_EPOCH_S <= epoch_s <= MAX_EPOCH_S:  # False for NaN too
        raise TaskValidationError(field, value, _OUT_OF_RANGE)
    return epoch_s


def refuse_unknown_options(options: Mapping[str, Any], field_prefix: str = "") -> None:
    """Raise :class:`UnknownOptionError` for the first keyword a task spec does not take."""
    unknown = sorted(str(name) for name in options if name not in SPEC_FIELDS)
    if unknown:
        name = unknown[0]
        raise UnknownOptionError(f"{field_prefix}{name}", options[name], SPEC_FIELDS)


def _check_keys(concurrency_key: Any, idempotency_key: Any) -> None:
    if concurrency_key is not None:
        require_text("concurrency_key", concurrency_key)
    if idempotency_key is not None:
        require_text("idempotency_key", idempotency_key)


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def _string_tuple(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        raise TaskValidationError(name, value, "expected a list of task ids")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise TaskValidationError(name, value, "expected a list of task ids")
        require_text(name, item)
    return items


def _metadata(now_s: float, tags: Any, created_by: str | None) -> TaskMetadata:
    from datetime import UTC

    meta = TaskMetadata(created_at=datetime.fromtimestamp(now_s, UTC))
    if tags:
        meta.tags = list(_string_tuple("tags", tags))
    if created_by is not None:
        require_text("created_by", created_by)
        meta.created_by = created_by
    return meta


def _encode_data(task_data: Any) -> bytes:
    if isinstance(task_data, dict):
        return encode_json(task_data, "task_data")
    raise TaskValidationError("task_data", task_data, "expected a dict (a JSON object)")
