"""Reading the model's values from user input or stored records.

Each function raises :class:`TaskValidationError` naming the field it read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from asched.errors import TaskValidationError
from asched.model.states import TaskLifecycle, TaskPriority

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


def encode_json(value: Any, field_name: str) -> bytes:
    """JSON-encode ``value`` or raise TaskValidationError naming ``field_name``."""
    try:
        encoded = orjson.dumps(value)
    except TypeError as exc:
        raise TaskValidationError(field_name, value, f"not JSON-serialisable ({exc})") from None
    # orjson hands back its whole (4 KiB) output buffer; keep a compact copy instead.
    return bytes(memoryview(encoded))
