"""Test helpers: a virtual clock the tests move by hand."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from itertools import count


class FakeTimer:
    __slots__ = ("callback", "cancelled", "when_s")

    def __init__(self, when_s: float, callback: Callable[[], None]) -> None:
        self.when_s = when_s
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A virtual clock: time only moves when :meth:`advance` or :meth:`jump` says so.

    Timers fire in deadline order, each with the clock set to its deadline, so
    code under test sees exactly the time it asked to be woken at.
    """

    def __init__(self, start_s: float = 1_800_000_000.0) -> None:
        self._now = start_s
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._seq = count()

    def now(self) -> float:
        return self._now

    def call_at(self, when_s: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(when_s, callback)
        heapq.heappush(self._timers, (when_s, next(self._seq), timer))
        return timer

    def next_deadline(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing every timer due on the way and
        letting the loop run what they started."""
        await self.advance_to(self._now + seconds)

    async def advance_to(self, when_s: float) -> None:
        await settle()
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > when_s:
                break
            _, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, deadline)
            timer.callback()
            await settle()
        self._now = max(self._now, when_s)
        await settle()

    async def jump(self) -> float | None:
        """Advance to the next timer's deadline (trio's autojump, one step)."""
        deadline = self.next_deadline()
        if deadline is not None:
            await self.advance_to(deadline)
        return deadline


async def settle(rounds: int = 20) -> None:
    """Let ready callbacks and tasks on the loop run (no real time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
