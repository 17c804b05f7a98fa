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
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Epoch seconds, and one-shot callbacks at an epoch instant."""

    def now(self) -> float: ...

    def call_at(self, when_s: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    """Wall-clock time; timers run on ``loop``'s monotonic clock."""

    __slots__ = ("_loop",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def now(self) -> float:
        return time.time()

    def call_at(self, when_s: float, callback: Callable[[], None]) -> TimerHandle:
        loop = self._loop
        return loop.call_at(loop.time() + (when_s - time.time()), callback)
