"""A timer wheel plus the one clock timer armed for its earliest deadline.

The engine keeps future tasks here and the schedule runner its schedules'
next fires; both want the same thing: hold many deadlines, arm a single
callback for the earliest, hand back everything due when it rings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from asched.clock import Clock, TimerHandle
from asched.core.wheel import Timer, TimerWheel

T = TypeVar("T")


class ArmedWheel(TimerWheel[T]):
    """A :class:`TimerWheel` that keeps one clock timer armed for its earliest deadline."""

    __slots__ = ("_armed_at", "_clock", "_handle", "_on_due")

    def __init__(self, clock: Clock, on_due: Callable[[list[T], float], None]) -> None:
        super().__init__(clock.now())
        self._clock = clock
        self._on_due = on_due
        self._handle: TimerHandle | None = None
        self._armed_at: float | None = None

    def insert(self, due_s: float, item: T) -> Timer[T]:
        # TimerWheel.insert inline: one frame per armed task, not two
        timer = Timer(due_s, item)
        self._place(timer)
        self._live += 1
        armed = self._armed_at
        if armed is None or due_s < armed:
            self._arm(due_s)
        return timer

    def stop(self) -> None:
        """Disarm the clock timer; the deadlines stay in the wheel."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._armed_at = None, None

    def _arm(self, when_s: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = when_s
        self._handle = self._clock.call_at(when_s, self._ring)

    def _ring(self) -> None:
        self._handle, self._armed_at = None, None
        now = self._clock.now()
        due = self.advance(now)
        following = self.next_deadline()
        if following is not None:
            self._arm(following)
        if due:
            self._on_due(due, now)
