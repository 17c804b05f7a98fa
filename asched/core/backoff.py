"""Retry decisions and backoff delays: pure maths, the random generator passed in.

The engine and the ``@retry`` decorator use one policy the same way, with
``retries`` counting the retries already made (``Task.retries``)::

    if policy.should_retry(exc, task.retries):
        task.retries += 1
        delay_s = policy.delay_s(task.retries, rng)   # first retry: base * factor

With the defaults (``base=1.0``, ``backoff_factor=2.0``) the delays are 2, 4, 8 s:
``backoff_factor ** retries``, the rule of the original spec.

Bounds (see :mod:`asched.core.bounds`): a backoff factor is 1 to 100, and every
delay is capped, so none can overflow a date or a sleep. For tasks without a
policy the engine uses :func:`retry_delay_s`, which applies the same rule, takes
the delay a handler asked for (``raise Retry(delay_s=...)``) when there is one,
and caps the result at ``max_backoff_s`` (1 day unless configured);
:func:`cap_delay_s` caps a policy's delay the same way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, TypeAlias

from asched.core.bounds import (
    DEFAULT_MAX_BACKOFF_S,
    MAX_BACKOFF_FACTOR,
    MAX_BACKOFF_S,
    FieldError,
    check_seconds,
)
from asched.errors import TaskValidationError

__all__ = [
    "Jitter",
    "RetryPolicy",
    "cap_delay_s",
    "check_backoff_factor",
    "check_max_backoff_s",
    "retry_delay_s",
]

Jitter: TypeAlias = Literal["full", "equal"]
_JITTERS = (None, "full", "equal")

# Used only when the caller passes no generator; tests always inject one.
_fallback_rng = random.Random()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to retry a failed attempt and how long to wait before the next one.

    ``delay_s(retries)`` is ``base * backoff_factor ** retries`` capped at
    ``max_delay`` (at most 366 days), then jittered: ``"full"`` draws uniformly from ``[0, d]``,
    ``"equal"`` from ``[d/2, d]``. An exception is retried when it matches
    ``retry_on`` and not ``give_up_on`` (``give_up_on`` wins) and fewer than
    ``max_retries`` retries have been made.
    """

    max_retries: int = 3
    backoff_factor: float = 2.0
    base: float = 1.0
    max_delay: float = 300.0
    jitter: Jitter | None = None
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    give_up_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        _require_count("max_retries", self.max_retries)
        check_backoff_factor(self.backoff_factor)
        check_seconds(TaskValidationError, "base", self.base, minimum=0.0, maximum=MAX_BACKOFF_S)
        check_max_backoff_s(self.max_delay, field="max_delay")
        if self.jitter not in _JITTERS:
            raise TaskValidationError("jitter", self.jitter, "must be None, 'full' or 'equal'")
        _require_exception_types("retry_on", self.retry_on)
        _require_exception_types("give_up_on", self.give_up_on)

    def should_retry(self, exc: BaseException, retries: int) -> bool:
        """Whether to retry after ``exc``, given ``retries`` retries already made."""
        return (
            retries < self.max_retries
            and isinstance(exc, self.retry_on)
            and not isinstance(exc, self.give_up_on)
        )

    def delay_s(self, retries: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retries`` (1 for the first retry).

        ``retries=0`` gives ``base``. Always within ``[0, max_delay]``.
        """
        if retries < 0:
            raise TaskValidationError("retries", retries, "must be >= 0")
        delay = self._capped(retries)
        if self.jitter is None or delay == 0.0:
            return delay
        draw = (rng or _fallback_rng).random()
        if self.jitter == "full":
            return delay * draw
        half = delay / 2
        return half + half * draw

    def _capped(self, retries: int) -> float:
        if self.base == 0.0:
            return 0.0
        try:
            # float(): an int factor would build a huge exact int instead of overflowing
            return min(self.base * float(self.backoff_factor) ** retries, self.max_delay)
        except OverflowError:
            return self.max_delay


def _require_count(field: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TaskValidationError(field, value, "must be an integer >= 0")


def check_backoff_factor(
    value: object, *, field: str = "backoff_factor", error: FieldError = TaskValidationError
) -> float:
    """A backoff factor as a float: a finite number from 1 to ``MAX_BACKOFF_FACTOR``."""
    return check_seconds(error, field, value, minimum=1.0, maximum=MAX_BACKOFF_FACTOR)


def check_max_backoff_s(
    value: object, *, field: str = "max_backoff_s", error: FieldError = TaskValidationError
) -> float:
    """A cap on retry delays as a float: a finite number of seconds from 0 to 366 days."""
    return check_seconds(error, field, value, minimum=0.0, maximum=MAX_BACKOFF_S)


def cap_delay_s(delay_s: float, max_backoff_s: float = DEFAULT_MAX_BACKOFF_S) -> float:
    """``delay_s`` within ``[0, max_backoff_s]``; NaN and +inf become the cap."""
    if not delay_s <= max_backoff_s:  # also true for NaN
        return max_backoff_s
    return max(delay_s, 0.0)


def retry_delay_s(
    backoff_factor: float,
    retry: int,
    *,
    requested_s: float | None = None,
    max_backoff_s: float = DEFAULT_MAX_BACKOFF_S,
) -> float:
    """Seconds before retry number ``retry`` (1 for the first) of a task without a policy.

    ``requested_s`` (from ``raise Retry(delay_s=...)``) wins over the backoff
    ``backoff_factor ** retry``; either is capped at ``max_backoff_s``, and no
    input, however large, raises ``OverflowError``.
    """
    if requested_s is not None:
        return cap_delay_s(requested_s, max_backoff_s)
    try:
        # float(): an int factor would build a huge exact int instead of overflowing
        return cap_delay_s(float(backoff_factor) ** max(retry, 0), max_backoff_s)
    except OverflowError:
        return max_backoff_s


def _require_exception_types(field: str, value: object) -> None:
    if not isinstance(value, tuple) or not all(
        isinstance(kind, type) and issubclass(kind, BaseException) for kind in value
    ):
        raise TaskValidationError(field, value, "must be a tuple of exception classes")
