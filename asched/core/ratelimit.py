"""Rate limiting per key: pure GCRA, the time passed in as ``now`` seconds.

GCRA (the generic cell rate algorithm) keeps one float per key: the
theoretical arrival time ``tat``, when the key would be fully recovered. A
call at ``now`` is allowed if ``now >= tat - burst * interval``, and then
pushes ``tat`` to ``max(tat, now) + interval`` where ``interval = period_s / limit``.
So at most ``burst + 1`` calls go back to back, then one per interval: never more
than ``limit + burst`` in any window of ``period_s`` seconds.

Examples: ``RateLimit(6, 3600)`` keyed by channel is "at most 6 per hour per
channel", one every 10 minutes; ``RateLimit(100, 60, burst=20)`` with a single
key is "100 per minute overall", up to 21 at once.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from asched.errors import ConfigError

__all__ = ["RateLimit", "RateLimiter"]

K = TypeVar("K", bound=Hashable)

# Fewest tracked keys before a sweep for recovered keys is worth its cost.
_MIN_SWEEP_SIZE = 64


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` calls per ``period_s`` seconds, plus ``burst`` calls back to back."""

    limit: int
    period_s: float
    burst: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            raise ConfigError("limit", self.limit, "must be an integer >= 1")
        if (
            not isinstance(self.period_s, int | float)
            or isinstance(self.period_s, bool)
            or not math.isfinite(self.period_s)
            or self.period_s <= 0
        ):
            raise ConfigError("period_s", self.period_s, "must be a finite number of seconds > 0")
        if not isinstance(self.burst, int) or isinstance(self.burst, bool) or self.burst < 0:
            raise ConfigError("burst", self.burst, "must be an integer >= 0")

    @property
    def interval_s(self) -> float:
        """The steady spacing between calls: ``period_s / limit``."""
        return self.period_s / self.limit


class RateLimiter(Generic[K]):
    """One :class:`RateLimit` applied to each key separately.

    Memory: a key is forgotten (lazily, in amortised O(1)) once it has fully
    recovered, since its state is then the same as a key never seen.
    """

    __slots__ = ("_interval_s", "_sweep_size", "_tat", "_tolerance_s", "rate")

    def __init__(self, rate: RateLimit) -> None:
        self.rate = rate
        self._interval_s = rate.interval_s
        self._tolerance_s = rate.burst * self._interval_s
        self._tat: dict[K, float] = {}
        self._sweep_size = _MIN_SWEEP_SIZE

    def try_acquire(self, key: K, now: float) -> float:
        """Take a call for ``key`` at ``now`` and return 0.0, or return the seconds to wait.

        A refused call takes nothing; trying again at ``now + wait`` succeeds if no
        other call for ``key`` was taken meanwhile.
        """
        tat = self._tat.get(key, now)
        allow_at = tat - self._tolerance_s
        if now < allow_at:
            return _wait_s(now, allow_at)
        self._tat[key] = (tat if tat > now else now) + self._interval_s
        if len(self._tat) > self._sweep_size:
            self._forget_recovered(now)
        return 0.0

    def peek(self, key: K, now: float) -> float:
        """The seconds ``key`` must wait at ``now`` (0.0 if allowed), taking nothing.

        Lets a caller check several limiters before acquiring from all of them.
        """
        tat = self._tat.get(key)
        if tat is None:
            return 0.0
        allow_at = tat - self._tolerance_s
        return _wait_s(now, allow_at) if now < allow_at else 0.0

    def reset(self, key: K) -> None:
        """Forget ``key``: its next call is allowed."""
        self._tat.pop(key, None)

    def __len__(self) -> int:
        """How many keys are tracked (recovered ones may linger until the next sweep)."""
        return len(self._tat)

    def _forget_recovered(self, now: float) -> None:
        tat = self._tat
        for key in [key for key, ready in tat.items() if ready <= now]:
            del tat[key]
        self._sweep_size = max(_MIN_SWEEP_SIZE, 2 * len(tat))


def _wait_s(now: float, allow_at: float) -> float:
    wait = allow_at - now
    # Rounding can leave now + wait a hair short of allow_at; a caller that waits
    # exactly the returned time must be allowed, so round the wait up.
    while now + wait < allow_at:
        wait = math.nextafter(wait, math.inf)
    return wait
