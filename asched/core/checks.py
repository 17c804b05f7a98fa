"""Field checks shared by every layer: each raises the given error naming the field.

``bool`` is an ``int`` to Python but never a count or a number of seconds here,
so every check refuses it.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, TypeGuard

from asched.errors import AschedError, TaskValidationError


class FieldError(Protocol):
    """The constructor shape shared by ``TaskValidationError`` and ``ConfigError``."""

    def __call__(self, field: str, value: object, reason: str) -> AschedError: ...


def is_number(value: object) -> TypeGuard[int | float]:
    """An int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


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
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf
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


def check_seconds(
    error: FieldError,
    field: str,
    value: object,
    *,
    minimum: float,
    maximum: float,
    include_minimum: bool = True,
) -> float:
    """``value`` as a float if it is a finite number in range, else ``error(field, ...)``.

    The range is ``[minimum, maximum]``, or ``(minimum, maximum]`` without
    ``include_minimum``; NaN and the infinities are always refused.
    """
    low = "[" if include_minimum else "("
    if not is_number(value):
        raise error(field, value, f"expected a number in {low}{minimum:g}, {maximum:g}]")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf
    in_range = minimum <= number if include_minimum else minimum < number
    if not (math.isfinite(number) and in_range and number <= maximum):
        raise error(field, value, f"must be a finite number in {low}{minimum:g}, {maximum:g}]")
    return number
