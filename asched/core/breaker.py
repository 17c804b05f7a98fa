"""Circuit-breaker state machine: pure, synchronous, the time passed in as ``now`` seconds.

::

    CLOSED ──(too many failures)──► OPEN ──(recovery_s elapsed)──► HALF_OPEN
       ▲                              ▲                                │
       │                              └────────(a trial fails)─────────┤
       └─────────────(half_open_max_calls trials succeed)──────────────┘

Every admitted call must report exactly one outcome: ``record_success``,
``record_failure`` or ``release`` (no verdict, e.g. the call was cancelled);
otherwise a half-open trial slot is never given back. Pass the ``generation``
read right after ``allow`` to each report so that a call admitted before a
state change (a straggler) cannot count as a trial or re-trip the breaker::

    if breaker.allow(now):
        generation = breaker.generation
        ...
        breaker.record_failure(later, generation)

Each state change is queued as a :class:`BreakerTransition` (the last
``MAX_PENDING_TRANSITIONS`` are kept) for ``drain_transitions()``.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, fields, replace
from typing import Any

from asched.core.checks import require_int, require_number
from asched.errors import ConfigError

__all__ = ["MAX_PENDING_TRANSITIONS", "BreakerState", "BreakerTransition", "CircuitBreakerCore"]

MAX_PENDING_TRANSITIONS = 100
# The failure-rate window is a ring of this many buckets (one per second for 60 s).
_BUCKETS = 60


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    """The breaker ``name`` went from ``from_state`` to ``to_state`` at ``at`` seconds."""

    name: str
    from_state: BreakerState
    to_state: BreakerState
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """How a circuit breaker trips and recovers; the one place its settings and
    defaults are written.

    Trips when ``failure_threshold`` consecutive failures are recorded, or, if
    ``failure_rate`` is set, when at least ``min_calls`` outcomes in the last
    ``window_s`` seconds (granularity ``window_s / 60``) include that share of
    failures (``failure_threshold`` is then not used). After ``recovery_s`` it
    admits ``half_open_max_calls`` trial calls; if all succeed it closes, the
    first failure re-opens it.
    """

    failure_threshold: int = 5
    failure_rate: float | None = None
    window_s: float = 60.0
    min_calls: int = 10
    recovery_s: float = 30.0
    half_open_max_calls: int = 1

    def __post_init__(self) -> None:
        require_int("failure_threshold", self.failure_threshold, minimum=1, error=ConfigError)
        require_int("min_calls", self.min_calls, minimum=1, error=ConfigError)
        require_int("half_open_max_calls", self.half_open_max_calls, minimum=1, error=ConfigError)
        if self.failure_rate is not None:
            require_number("failure_rate", self.failure_rate, above=0, maximum=1, error=ConfigError)
        require_number("window_s", self.window_s, above=0, unit="seconds", error=ConfigError)
        require_number("recovery_s", self.recovery_s, minimum=0, unit="seconds", error=ConfigError)

    @classmethod
    def of(cls, base: BreakerSettings | None = None, **changes: Any) -> BreakerSettings:
        """``base`` (default: the defaults) with ``changes``; an unknown name is a ConfigError."""
        unknown = sorted(set(changes) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(unknown[0], changes[unknown[0]], "not a circuit breaker setting")
        return replace(base or cls(), **changes)


class CircuitBreakerCore:
    """Decides whether calls to one dependency may go ahead, by its
    :class:`BreakerSettings` (copied into slots: they are read on every call)."""

    __slots__ = (
        "_bucket_calls",
        "_bucket_failures",
        "_bucket_s",
        "_consecutive_failures",
        "_generation",
        "_head_bucket",
        "_open_until",
        "_state",
        "_transitions",
        "_trial_successes",
        "_trials_in_flight",
        "_window_calls",
        "_window_failures",
        "failure_rate",
        "failure_threshold",
        "half_open_max_calls",
        "min_calls",
        "name",
        "recovery_s",
        "settings",
        "window_s",
    )

    def __init__(self, name: str, settings: BreakerSettings | None = None) -> None:
        self.name = name
        self.settings = settings = settings or BreakerSettings()
        self.failure_threshold = settings.failure_threshold
        self.failure_rate = settings.failure_rate
        self.window_s = settings.window_s
        self.min_calls = settings.min_calls
        self.recovery_s = settings.recovery_s
        self.half_open_max_calls = settings.half_open_max_calls
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._open_until = 0.0
        self._consecutive_failures = 0
        self._trials_in_flight = 0
        self._trial_successes = 0
        self._bucket_s = settings.window_s / _BUCKETS
        self._bucket_calls = [0] * _BUCKETS
        self._bucket_failures = [0] * _BUCKETS
        self._head_bucket = -(2**62)
        self._window_calls = 0
        self._window_failures = 0
        self._transitions: deque[BreakerTransition] = deque(maxlen=MAX_PENDING_TRANSITIONS)

    @property
    def generation(self) -> int:
        """Changes on every transition; tags a call with the state it was admitted in."""
        return self._generation

    def state(self, now: float) -> BreakerState:
        """The current state; an OPEN breaker turns HALF_OPEN here once ``recovery_s`` passed."""
        if self._state is BreakerState.OPEN and now >= self._open_until:
            self._move(BreakerState.HALF_OPEN, self._open_until, "recovery time elapsed")
        return self._state

    def allow(self, now: float) -> bool:
        """Whether a call may start now; in HALF_OPEN this takes one trial slot."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        if self._has_trial_slot():
            self._trials_in_flight += 1
            return True
        return False

    def record_success(self, now: float, generation: int | None = None) -> BreakerTransition | None:
        """An admitted call succeeded; returns the transition it caused, if any."""
        if generation is not None and generation != self._generation:
            return None
        state = self._state
        if state is BreakerState.CLOSED:
            self._consecutive_failures = 0
            if self.failure_rate is not None:
                self._count(now, failed=False)
        elif state is BreakerState.HALF_OPEN:
            if self._trials_in_flight:
                self._trials_in_flight -= 1
            self._trial_successes += 1
            if self._trial_successes >= self.half_open_max_calls:
                return self._move(
                    BreakerState.CLOSED, now, f"{self._trial_successes} trial call(s) succeeded"
                )
        return None

    def record_failure(self, now: float, generation: int | None = None) -> BreakerTransition | None:
        """An admitted call failed; returns the transition it caused, if any."""
        if generation is not None and generation != self._generation:
            return None
        state = self._state
        if state is BreakerState.HALF_OPEN:
            return self._open(now, "a trial call failed")
        if state is not BreakerState.CLOSED:
            return None
        if self.failure_rate is None:
            self._consecutive_failures += 1
            if self._consecutive_failures >= self.failure_threshold:
                return self._open(now, f"{self._consecutive_failures} consecutive failures")
            return None
        self._count(now, failed=True)
        calls, failures = self._window_calls, self._window_failures
        if calls >= self.min_calls and failures >= self.failure_rate * calls:
            return self._open(now, f"{failures} of {calls} calls failed within {self.window_s:g}s")
        return None

    def release(self, generation: int | None = None) -> None:
        """An admitted call ended without a verdict (cancelled): free its trial slot."""
        if generation is not None and generation != self._generation:
            return
        if self._state is BreakerState.HALF_OPEN and self._trials_in_flight:
            self._trials_in_flight -= 1

    def retry_after(self, now: float) -> float | None:
        """Seconds until a call would be allowed: 0.0 if now, None if it depends on trials."""
        state = self.state(now)
        if state is BreakerState.OPEN:
            return self._open_until - now
        if state is BreakerState.CLOSED or self._has_trial_slot():
            return 0.0
        return None

    def drain_transitions(self) -> list[BreakerTransition]:
        """The queued transitions, oldest first; the queue is emptied."""
        drained = list(self._transitions)
        self._transitions.clear()
        return drained

    @property
    def has_transitions(self) -> bool:
        """Whether transitions are waiting for ``drain_transitions()``."""
        return bool(self._transitions)

    def _has_trial_slot(self) -> bool:
        return self._trials_in_flight + self._trial_successes < self.half_open_max_calls

    def _open(self, now: float, reason: str) -> BreakerTransition:
        self._open_until = now + self.recovery_s
        return self._move(BreakerState.OPEN, now, reason)

    def _move(self, to_state: BreakerState, at: float, reason: str) -> BreakerTransition:
        transition = BreakerTransition(self.name, self._state, to_state, at, reason)
        self._state = to_state
        self._generation += 1
        self._trials_in_flight = 0
        self._trial_successes = 0
        if to_state is BreakerState.CLOSED:
            self._consecutive_failures = 0
            self._clear_window()
        self._transitions.append(transition)
        return transition

    def _count(self, now: float, *, failed: bool) -> None:
        bucket = int(now // self._bucket_s)
        head = self._head_bucket
        if bucket > head:
            if bucket - head >= _BUCKETS:
                self._clear_window()
            else:
                # Expire the buckets that slid out of the window since the last outcome.
                for stale in range(head + 1, bucket + 1):
                    slot = stale % _BUCKETS
                    self._window_calls -= self._bucket_calls[slot]
                    self._window_failures -= self._bucket_failures[slot]
                    self._bucket_calls[slot] = 0
                    self._bucket_failures[slot] = 0
            self._head_bucket = head = bucket
        # A clock that steps back counts into the newest bucket.
        slot = head % _BUCKETS
        self._bucket_calls[slot] += 1
        self._window_calls += 1
        if failed:
            self._bucket_failures[slot] += 1
            self._window_failures += 1

    def _clear_window(self) -> None:
        for slot in range(_BUCKETS):
            self._bucket_calls[slot] = 0
            self._bucket_failures[slot] = 0
        self._window_calls = 0
        self._window_failures = 0
