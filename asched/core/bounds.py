"""The ranges asched accepts for durations, factors and instants, and their checks.

Every number that later feeds date arithmetic, a sleep or a power has a finite
upper bound here, so no input can surface later as an ``OverflowError``, an
endless loop or a date past year 9999:

==========================  ==================================  =====================
what                        range                               constant
==========================  ==================================  =====================
interval of a schedule      1 ms to 366 days                    ``MAX_INTERVAL_S``
backoff factor              1 to 100                            ``MAX_BACKOFF_FACTOR``
cap on any retry delay      0 to 366 days, default 1 day        ``MAX_BACKOFF_S``
an instant (epoch seconds)  year 1 to the end of year 9998      ``MIN_EPOCH_S``/``MAX_EPOCH_S``
==========================  ==================================  =====================

The checks raise the error class the caller names (``TaskValidationError`` for
task and schedule input, ``ConfigError`` for settings), with the field and value.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Protocol, TypeGuard

from asched.errors import AschedError

__all__ = [
    "DAY_S",
    "DEFAULT_MAX_BACKOFF_S",
    "MAX_BACKOFF_FACTOR",
    "MAX_BACKOFF_S",
    "MAX_EPOCH_S",
    "MAX_INTERVAL_S",
    "MIN_EPOCH_S",
    "MIN_INTERVAL_S",
    "check_seconds",
    "is_number",
]

DAY_S = 86_400.0
MIN_INTERVAL_S = 0.001  # keeps every step far above float resolution
MAX_INTERVAL_S = 366 * DAY_S  # longer periods are a cron expression or a date trigger
MAX_BACKOFF_FACTOR = 100.0
DEFAULT_MAX_BACKOFF_S = DAY_S
MAX_BACKOFF_S = 366 * DAY_S
#: the instants a trigger may name: within what ``datetime`` represents in any zone
MIN_EPOCH_S = datetime(1, 1, 2, tzinfo=UTC).timestamp()
MAX_EPOCH_S = datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


class FieldError(Protocol):
    """The constructor shape shared by ``TaskValidationError`` and ``ConfigError``."""

    def __call__(self, field: str, value: object, reason: str) -> AschedError: ...


def is_number(value: object) -> TypeGuard[int | float]:
    """An int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


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
