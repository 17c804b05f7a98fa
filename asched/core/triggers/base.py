"""When a schedule fires next: the Trigger contract, fixed-interval and one-off triggers.

Cron is in :mod:`asched.core.triggers.cron`; records in :mod:`asched.core.triggers.records`.

Time is **epoch seconds** (``float``, UTC) everywhere, the unit of the engine's
hot paths: ``trigger.next_fire(after_epoch)`` returns the first fire *strictly
after* ``after_epoch``, or ``None`` when the trigger has no fire left.
:func:`to_epoch` and :func:`from_epoch` convert at the edges; ``start``/``end``
arguments also accept aware datetimes. Nothing here reads a clock: ``now`` is
always an argument.

Persistence
    ``to_dict()`` gives a JSON-safe dict with ``kind`` and ``version``;
    :func:`trigger_from_dict` rebuilds it and raises ``TaskValidationError``
    (field ``"trigger"``) on anything it does not understand.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta, tzinfo
from typing import ClassVar, TypeAlias

from asched.core.bounds import (
    MAX_EPOCH_S,
    MAX_INTERVAL_S,
    MIN_EPOCH_S,
    MIN_INTERVAL_S,
    check_seconds,
)
from asched.core.checks import is_number, require_int, require_number
from asched.errors import TaskValidationError

TRIGGER_FORMAT_VERSION = 1
TriggerDict: TypeAlias = dict[str, str | int | float | None]

_ONE_SECOND = timedelta(seconds=1)
_DAY_S = 86_400
_ONE_DAY = timedelta(days=1)


# --- epoch helpers -------------------------------------------------------------


def to_epoch(moment: datetime) -> float:
    """Epoch seconds of an aware datetime; a naive one raises ``TaskValidationError``."""
    return epoch_of("datetime", moment)


def from_epoch(epoch_s: float, tz: tzinfo = UTC) -> datetime:
    """The aware datetime of ``epoch_s`` in ``tz`` (UTC by default)."""
    return datetime.fromtimestamp(epoch_s, tz)


def epoch_of(field: str, value: float | datetime) -> float:
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise TaskValidationError(field, value, "naive datetime; attach a tzinfo (e.g. UTC)")
        return value.timestamp()
    if not is_number(value):
        raise TaskValidationError(field, value, "must be epoch seconds or an aware datetime")
    return require_number(field, value)


def instant(field: str, value: float | datetime) -> float:
    """Epoch seconds of a fire time or a first fire: year 1 to the end of year 9998."""
    epoch = epoch_of(field, value)
    if not MIN_EPOCH_S <= epoch <= MAX_EPOCH_S:
        raise TaskValidationError(field, value, "must fall between year 1 and the end of 9998")
    return epoch


def optional_instant(field: str, value: float | datetime | None) -> float | None:
    return None if value is None else instant(field, value)


def optional_epoch(field: str, value: float | datetime | None) -> float | None:
    return None if value is None else epoch_of(field, value)


def check_bounds(start: float | None, end: float | None) -> None:
    if start is not None and end is not None and end < start:
        raise TaskValidationError("end", end, f"is before start={start}")


def check_reference(after_epoch: float) -> None:
    if not math.isfinite(after_epoch):
        raise TaskValidationError("after_epoch", after_epoch, "must be finite epoch seconds")


# --- the trigger family --------------------------------------------------------


class Trigger(ABC):
    """A rule saying when a schedule fires; immutable, comparable, JSON round-trippable.

    Subclasses implement :meth:`next_fire` and :meth:`to_dict`; :meth:`fires_between`
    has a generic implementation that subclasses may speed up.
    """

    __slots__ = ()
    kind: ClassVar[str]

    @abstractmethod
    def next_fire(self, after_epoch: float) -> float | None:
        """The first fire strictly after ``after_epoch``, or ``None`` if there is none."""

    @abstractmethod
    def to_dict(self) -> TriggerDict:
        """A JSON-safe description with ``kind`` and ``version``; see :func:`trigger_from_dict`."""

    def fires_between(self, start_epoch: float, end_epoch: float, limit: int) -> list[float]:
        """Fires in ``(start_epoch, end_epoch]``, oldest first, at most ``limit`` of them."""
        check_window(start_epoch, end_epoch, limit)
        fires: list[float] = []
        fire = self.next_fire(start_epoch)
        while fire is not None and fire <= end_epoch and len(fires) < limit:
            fires.append(fire)
            fire = self.next_fire(fire)
        return fires

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Trigger):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.to_dict().items())))

    def __repr__(self) -> str:
        fields = self.to_dict()
        args = ", ".join(f"{k}={v!r}" for k, v in fields.items() if k not in ("kind", "version"))
        return f"{type(self).__name__}({args})"


def fires_between(
    trigger: Trigger, start_epoch: float, end_epoch: float, limit: int
) -> list[float]:
    """Fires of ``trigger`` in ``(start_epoch, end_epoch]``, oldest first, at most ``limit``.

    Consecutive windows ``(a, b]``, ``(b, c]`` never share a fire. Used by the
    execution forecast, so cron and interval triggers answer from cached day plans
    or plain arithmetic rather than one full search per fire.
    """
    return trigger.fires_between(start_epoch, end_epoch, limit)


def check_window(start_epoch: float, end_epoch: float, limit: int) -> None:
    check_reference(start_epoch)
    if not math.isfinite(end_epoch):
        raise TaskValidationError("end_epoch", end_epoch, "must be finite epoch seconds")
    require_int("limit", limit, minimum=0)


class DateTrigger(Trigger):
    """Fires exactly once, at ``at`` (epoch seconds or an aware datetime)."""

    __slots__ = ("_at",)
    kind = "date"

    def __init__(self, at: float | datetime) -> None:
        self._at = instant("at", at)

    @property
    def at(self) -> float:
        return self._at

    def next_fire(self, after_epoch: float) -> float | None:
        check_reference(after_epoch)
        return self._at if self._at > after_epoch else None

    def to_dict(self) -> TriggerDict:
        return {"kind": self.kind, "version": TRIGGER_FORMAT_VERSION, "at": self._at}


class IntervalTrigger(Trigger):
    """Fires every ``seconds`` of elapsed time: at ``start + k * seconds``, k = 0, 1, 2, ...

    ``start`` is the first fire (inclusive). Give ``start=now + seconds`` for a
    first run one period after creation, or ``start=now`` to run at once. With
    no ``start`` the grid is anchored at the Unix epoch (k any integer), so
    ``IntervalTrigger(3600)`` fires on every UTC hour. ``end`` (inclusive) is the
    last moment a fire may happen. Elapsed time knows no DST. ``seconds`` must be
    a finite number from 1 ms (which keeps every step far above float resolution)
    to 366 days (use a cron expression for longer periods); ``start`` must fall
    between year 1 and the end of 9998, and no fire is produced after 9998.
    """

    __slots__ = ("_end", "_seconds", "_start")
    kind = "interval"
    MIN_SECONDS: ClassVar[float] = MIN_INTERVAL_S
    MAX_SECONDS: ClassVar[float] = MAX_INTERVAL_S

    def __init__(
        self,
        seconds: float,
        *,
        start: float | datetime | None = None,
        end: float | datetime | None = None,
    ) -> None:
        self._seconds = check_seconds(
            TaskValidationError,
            "interval",
            seconds,
            minimum=self.MIN_SECONDS,
            maximum=self.MAX_SECONDS,
        )
        self._start = optional_instant("start", start)
        self._end = optional_epoch("end", end)
        check_bounds(self._start, self._end)

    @property
    def seconds(self) -> float:
        return self._seconds

    @property
    def start(self) -> float | None:
        return self._start

    @property
    def end(self) -> float | None:
        return self._end

    def next_fire(self, after_epoch: float) -> float | None:
        check_reference(after_epoch)
        if after_epoch >= self._last:
            return None
        fire = self._fire(self._first_step_after(after_epoch))
        return fire if fire <= self._last else None

    def fires_between(self, start_epoch: float, end_epoch: float, limit: int) -> list[float]:
        check_window(start_epoch, end_epoch, limit)
        last = min(end_epoch, self._last)
        fires: list[float] = []
        if start_epoch >= last:
            return fires
        step = self._first_step_after(start_epoch)
        while len(fires) < limit and (fire := self._fire(step)) <= last:
            fires.append(fire)
            step += 1
        return fires

    def to_dict(self) -> TriggerDict:
        return {
            "kind": self.kind,
            "version": TRIGGER_FORMAT_VERSION,
            "seconds": self._seconds,
            "start": self._start,
            "end": self._end,
        }

    @property
    def _last(self) -> float:
        """The last instant a fire may happen: ``end``, and never after year 9998."""
        return MAX_EPOCH_S if self._end is None else min(self._end, MAX_EPOCH_S)

    def _fire(self, step: int) -> float:
        return (self._start or 0.0) + step * self._seconds

    def _first_step_after(self, after_epoch: float) -> int:
        # Far outside the calendar a step of the grid is below float resolution
        # and the nudging below would never end; no fire is that early anyway.
        after_epoch = max(after_epoch, MIN_EPOCH_S)
        bounded = self._start is not None
        step = math.floor((after_epoch - (self._start or 0.0)) / self._seconds) + 1
        if bounded:
            step = max(step, 0)
        # The division can round either way; nudge so fire(step - 1) <= after < fire(step).
        while (not bounded or step > 0) and self._fire(step - 1) > after_epoch:
            step -= 1
        while self._fire(step) <= after_epoch:
            step += 1
        return step


# --- cron ----------------------------------------------------------------------
