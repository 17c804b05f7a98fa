"""Field checks shared by every layer: each raises the given error naming the field.

``bool`` is an ``int`` to Python but never a count or a number of seconds here,
so every check refuses it.
"""

from __future__ import annotations

import math
from typing import Any

from asched.errors import TaskValidationError

#: ConfigError or TaskValidationError (or a subclass): built as ``error(field, value, reason)``.
FieldError = type[Exception]


def require_int(
    field: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    error: FieldError = TaskValidationError,
) -> int:
    """``value`` as an int within [minimum, maximum], or ``error`` naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(field, value, f"must be {_int_range(minimum, maximum)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise error(field, value, f"must be {_int_range(minimum, maximum)}")
    return value


def require_number(
    field: str,
    value: Any,
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
    unit: str = "",
    error: FieldError = TaskValidationError,
) -> float:
    """``value`` as a finite float, >= ``minimum`` or > ``above``, <= ``maximum``."""
    what = f"a number{unit and ' of ' + unit}"
    bounds = _bounds(minimum, above, maximum)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(field, value, f"must be {what}{bounds}")
    number = float(value)
    if not math.isfinite(number):
        raise error(field, value, f"must be a finite {what.removeprefix('a ')}{bounds}")
    if (
        (minimum is not None and number < minimum)
        or (above is not None and number <= above)
        or (maximum is not None and number > maximum)
    ):
        raise error(field, value, f"must be {what}{bounds}")
    return number


def require_text(field: str, value: Any, *, error: FieldError = TaskValidationError) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise error(field, value, "expected a non-empty string")
    return value


def _int_range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an integer from {minimum} to {maximum}"
    if minimum is not None:
        return f"an integer >= {minimum}"
    if maximum is not None:
        return f"an integer <= {maximum}"
    return "an integer"


def _bounds(minimum: float | None, above: float | None, maximum: float | None) -> str:
    parts = []
    if minimum is not None:
        parts.append(f">= {minimum:g}")
    if above is not None:
        parts.append(f"> {above:g}")
    if maximum is not None:
        parts.append(f"<= {maximum:g}")
    return " " + " and ".join(parts) if parts else ""
