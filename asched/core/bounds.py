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

The checks themselves live in :mod:`asched.core.checks`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from asched.core.checks import FieldError, check_seconds, is_number

__all__ = [
    "DAY_S",
    "DEFAULT_MAX_BACKOFF_S",
    "MAX_BACKOFF_FACTOR",
    "MAX_BACKOFF_S",
    "MAX_EPOCH_S",
    "MAX_INTERVAL_S",
    "MIN_EPOCH_S",
    "MIN_INTERVAL_S",
    "FieldError",
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
