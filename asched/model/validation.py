"""Reading the model's values from user input or stored records.

Each function raises :class:`TaskValidationError` naming the field it read.

Task data is plain JSON: objects with string keys, arrays, strings, finite
numbers, booleans and null.  Refused, with the field named: NaN and the
infinities (JSON has no spelling for them), datetimes and dataclasses (write
them as strings or dicts yourself, so that what a handler gets back is what
was stored), strings that are not valid Unicode (lone surrogates) and nesting
deeper than :data:`MAX_JSON_DEPTH` containers.  Tuples are stored as arrays,
enums as their values and UUIDs as their strings (how orjson writes them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
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


#: How deeply objects and arrays may nest in task data (the outermost counts).
MAX_JSON_DEPTH = 254
# Datetimes and dataclasses go to ``default``, which there is none of: a TypeError.
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def encode_json(value: Any, field_name: str) -> bytes:
    """JSON-encode ``value`` or raise TaskValidationError naming ``field_name``."""
    try:
        encoded = orjson.dumps(value, option=_STRICT)
    except TypeError as exc:
        found = _find(value, field_name, _not_plain)
        where = "" if found is None else f"{found[0]}={_brief(found[1])}: "
        raise TaskValidationError(field_name, value, where + _why_not_json(exc)) from None
    # orjson writes NaN and the infinities as null: look closer only when a null is there.
    if encoded.partition(b"null")[1]:  # cheaper than find() (no argument parsing) or `in`
        found = _find(value, field_name, _not_finite)
        if found is not None:
            reason = f"{found[0]}={found[1]!r}: NaN and infinities are not JSON numbers"
            raise TaskValidationError(field_name, value, reason)
    # orjson hands back its whole (4 KiB) output buffer; keep a compact copy instead.
    return bytes(memoryview(encoded))


def _why_not_json(exc: TypeError) -> str:
    text = str(exc)
    if text == "Recursion limit reached":
        return f"nested deeper than {MAX_JSON_DEPTH} levels"
    if "surrogates not allowed" in text:
        return "a string in it is not valid Unicode (a lone surrogate)"
    return f"not plain JSON ({text})"


_PLAIN = (str, int, float, bool, type(None), dict, list, tuple)


def _brief(value: Any) -> str:
    text = repr(value) if isinstance(value, str | int | float) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _not_finite(item: Any) -> bool:
    return isinstance(item, float) and not math.isfinite(item)


def _not_plain(item: Any) -> bool:
    """A value or key orjson refused, or one it would write in a way it does not read back."""
    if isinstance(item, str):
        return not item.isascii() and _not_utf8(item)
    return not isinstance(item, _PLAIN)


def _not_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _find(value: Any, field_name: str, bad: Callable[[Any], bool]) -> tuple[str, Any] | None:
    """Where in ``value`` (as ``field.key[index]``) the first ``bad`` item or key is.
    Only on the error path: the common path is orjson's alone."""
    pending: list[tuple[str, Any, int]] = [(field_name, value, 1)]
    while pending:
        path, item, depth = pending.pop()
        if bad(item):
            return path, item
        if depth > MAX_JSON_DEPTH:
            return None
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str) or bad(key):
                    return f"{path} key", key
                pending.append((f"{path}.{key}", child, depth + 1))
        elif isinstance(item, list | tuple):
            pending.extend((f"{path}[{i}]", child, depth + 1) for i, child in enumerate(item))
    return None


def require_text(field: str, value: Any) -> str:
    """A non-empty string that is valid Unicode (it can be stored as UTF-8)."""
    if not isinstance(value, str) or not value:
        raise TaskValidationError(field, value, "expected a non-empty string")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise TaskValidationError(
                field, value, "not valid Unicode (a lone surrogate)"
            ) from None
    return value
