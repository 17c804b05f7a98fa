"""Clocks: where the scheduler reads the time and arms its timers.

The engine never calls ``time.time()`` or ``loop.call_at`` directly; it asks
its :class:`Clock`.  :class:`LoopClock` is wall-clock time on the running
event loop; :class:`asched.testing.FakeClock` is a virtual clock that tests
move by hand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Epoch seconds, and one-shot callbacks at an epoch instant."""

    def now(self) -> float: ...

    def call_at(self, when_s: float, callback: Callable[[], None]) -> TimerHandle: ...


#: Below this much time left, a timer is not precise enough: uvloop rounds
#: delays to whole milliseconds (0.6 ms fires after ~1.1 ms), so the last
#: stretch is covered by re-checking on each loop iteration instead.
SPIN_S = 0.0015


class LoopClock:
    """Wall-clock time; timers on the running loop, precise to a loop iteration.

    A timer is armed a millisecond early and its callback re-arms until the
    deadline has truly passed, so callers must re-check the time (the engine
    does): a callback may run before ``when_s``, never much after it.
    """

    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    #: ``time.time`` itself, so reading the clock costs no Python frame (the engine
    #: reads it several times per task).
    now = staticmethod(time.time)

    def call_at(self, when_s: float, callback: Callable[[], None]) -> TimerHandle:
        delay = when_s - time.time()
        if delay <= SPIN_S:
            return self._loop.call_soon(callback)
        return self._loop.call_later(delay - 0.001, callback)


class WallClock:
    """Wall-clock time with timers on whichever loop is running (before a start)."""

    __slots__ = ()

    def now(self) -> float:
        return time.time()

    def call_at(self, when_s: float, callback: Callable[[], None]) -> TimerHandle:
        return LoopClock(asyncio.get_running_loop()).call_at(when_s, callback)


def wall_now() -> float:
    """Epoch seconds, for code that has no Clock (operator commands, stores, defaults)."""
    return time.time()


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.fromtimestamp(time.time(), UTC)


def monotonic() -> float:
    """Seconds on a clock that never goes back, for deadlines and elapsed time."""
    return time.monotonic()
