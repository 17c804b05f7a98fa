"""Sliding-window counters for the load metrics, in one-second buckets.

``record`` is O(1); reading a window is O(window in seconds).  Time is passed
in, so the windows are tested with plain numbers.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

HOUR_S = 3600


@dataclass(frozen=True, slots=True)
class WindowTotals:
    succeeded: int
    failed: int
    busy_s: float

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed

    @property
    def success_rate(self) -> float | None:
        return None if self.finished == 0 else self.succeeded / self.finished


class OutcomeWindow:
    """Counts task outcomes and busy time over the last ``span_s`` seconds."""

    __slots__ = ("_busy", "_failed", "_second", "_span", "_succeeded")

    def __init__(self, span_s: int = HOUR_S) -> None:
        self._span = span_s
        self._second = [-1] * span_s
        self._succeeded = [0] * span_s
        self._failed = [0] * span_s
        self._busy = [0.0] * span_s

    def record(self, now_s: float, succeeded: bool, duration_s: float) -> None:
        second = int(now_s)
        slot = second % self._span
        if self._second[slot] != second:
            self._second[slot] = second
            self._succeeded[slot] = 0
            self._failed[slot] = 0
            self._busy[slot] = 0.0
        if succeeded:
            self._succeeded[slot] += 1
        else:
            self._failed[slot] += 1
        self._busy[slot] += duration_s

    def totals(self, now_s: float, last_s: int) -> WindowTotals:
        """Sums over the ``last_s`` seconds up to and including ``now_s``'s second."""
        last_s = min(last_s, self._span)
        newest = int(now_s)
        oldest = newest - last_s + 1
        succeeded = failed = 0
        busy = 0.0
        for slot, second in enumerate(self._second):
            if oldest <= second <= newest:
                succeeded += self._succeeded[slot]
                failed += self._failed[slot]
                busy += self._busy[slot]
        return WindowTotals(succeeded, failed, busy)


class Samples:
    """The most recent ``capacity`` (time, value) samples, for percentiles over a
    recent span.  ``record`` is O(1); reading sorts what is inside the span."""

    __slots__ = ("_at", "_values")

    def __init__(self, capacity: int = 4096) -> None:
        self._at: deque[float] = deque(maxlen=capacity)
        self._values: deque[float] = deque(maxlen=capacity)

    def record(self, at_s: float, value: float) -> None:
        self._at.append(at_s)
        self._values.append(value)

    def recorders(self) -> tuple[Callable[[float], None], Callable[[float], None]]:
        """The two appends ``record`` makes (times, values), for callers that record
        many samples in a loop and would rather not pay a call each."""
        return self._at.append, self._values.append

    def within(self, now_s: float, span_s: float) -> list[float]:
        oldest = now_s - span_s
        return [v for at, v in zip(self._at, self._values, strict=True) if at > oldest]

    def percentiles(
        self, now_s: float, span_s: float, quantiles: tuple[float, ...]
    ) -> list[float | None]:
        """Nearest-rank percentiles (``0.5``, ``0.95``, ...) of the values in the span."""
        values = sorted(self.within(now_s, span_s))
        if not values:
            return [None] * len(quantiles)
        top = len(values) - 1
        return [values[min(top, max(0, math.ceil(q * len(values)) - 1))] for q in quantiles]
