"""When a schedule fires next: cron, fixed-interval and one-off triggers, as pure maths.

Time is **epoch seconds** (``float``, UTC) everywhere, the unit of the engine's
hot paths: ``trigger.next_fire(after_epoch)`` returns the first fire *strictly
after* ``after_epoch``, or ``None`` when the trigger has no fire left.
:func:`to_epoch` and :func:`from_epoch` convert at the edges; ``start``/``end``
arguments also accept aware datetimes. Nothing here reads a clock: ``now`` is
always an argument.

Cron expressions
    ``minute hour day-of-month month day-of-week`` (5 fields) or, following
    croniter's convention, 6 fields with **seconds last**:
    ``"0 9 * * MON-FRI 30"`` is 09:00:30 on weekdays. Lists, ranges, steps,
    names (``JAN``, ``MON``), ``?``, ``L`` (last day of the month), ``5#3`` (third
    Friday) and ``L5`` (last Friday) are accepted, and the aliases ``@yearly``,
    ``@annually``, ``@monthly``, ``@weekly``, ``@daily``, ``@midnight`` and
    ``@hourly``. When both day fields are restricted a day matching *either*
    fires (classic cron). A ``*`` inside a list means every value of its field
    and leaves the field unrestricted, as a lone ``*`` does: ``*,5 * * * *`` fires
    every minute, ``0 0 *,15 * *`` and ``0 0 * * *,0`` every day, and
    ``0 0 * * *,5#3`` (a ``*`` beside ``#``/``L`` weekdays) every day too.
    Refused with :class:`~asched.errors.TaskValidationError` (field ``"cron"``,
    the message naming the cron field and the part): ``H``/``R`` (hashed or
    random values: a stored schedule must mean the same everywhere), ``W``
    (nearest weekday), a 7th (year) field, ``#``/``L`` weekdays combined with
    plain weekdays or a day of month, ranges whose ends are the same value
    however spelled (``5-5``, ``jan-1``, ``mon-1``, ``0-sun``, ``7-0``: croniter
    reads them as the whole field; ``0-7`` is the whole week), steps outside 1 to
    the width of their field (``*/0``, ``*/61`` in minutes, ``*/8`` in weekdays)
    and expressions that can never fire (``0 0 30 2 *``). ``0 0 29 2 *`` is
    valid and fires on leap days. The checks on the text live in
    :mod:`asched.core.cron_syntax`.

Daylight saving time (the rule, in the trigger's IANA zone)
    * A wall time that does not exist (spring forward) fires once, at the first
      instant after the gap: ``30 2 * * *`` in Europe/Madrid fires at 03:00 CEST
      on the last Sunday of March. Several wall times inside one gap collapse
      into that single fire.
    * A wall time that occurs twice (fall back) fires once, at its first
      occurrence. An hourly expression therefore skips the repeated hour: it
      fires at 02:00 CEST and next at 03:00 CET, two real hours later. Use
      :class:`IntervalTrigger` for periods of elapsed time.

    How (in :mod:`asched.core.cron_calendar`): croniter only parses and expands
    the fields (its ``get_next`` takes about 100 µs and fires twice on fall-back
    days). We walk local *wall-clock* candidates in order and map each to an
    instant with ``fold=0`` (gap times to the end of their gap). That mapping
    never decreases, so the first candidate whose instant is not before the
    reference is the answer. Days with a single UTC offset are cached so the
    next fire on such a day is one ``bisect``.
    Searches are bounded: the Gregorian calendar repeats every 400 years, so an
    expression that matches nothing in one cycle never fires and is refused up
    front, and no search looks further than one cycle ahead. No fire is produced
    after the year 9998.

Zones are IANA names checked with :mod:`zoneinfo`, which reads the tz database
once per zone (``"localtime"`` is refused: it differs from machine to machine).

Persistence
    ``to_dict()`` gives a JSON-safe dict with ``kind`` and ``version``;
    :func:`trigger_from_dict` rebuilds it and raises ``TaskValidationError``
    (field ``"trigger"``) on anything it does not understand.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import ClassVar, TypeAlias
from zoneinfo import ZoneInfo

from asched.core.bounds import (
    MAX_EPOCH_S,
    MAX_INTERVAL_S,
    MIN_EPOCH_S,
    MIN_INTERVAL_S,
    check_seconds,
)
from asched.core.checks import is_number, require_int, require_number
from asched.core.cron_calendar import (
    LAST_YEAR,
    end_of_repeated_span,
    load_zone,
    next_matching_day,
    parse_cron,
    search_limit,
    steady_day_start,
    wall_to_epoch,
)
from asched.errors import TaskValidationError

__all__ = [
    "TRIGGER_FORMAT_VERSION",
    "CronTrigger",
    "DateTrigger",
    "IntervalTrigger",
    "Trigger",
    "TriggerDict",
    "fires_between",
    "from_epoch",
    "to_epoch",
    "trigger_from_dict",
]

TRIGGER_FORMAT_VERSION = 1
TriggerDict: TypeAlias = dict[str, str | int | float | None]

_ONE_SECOND = timedelta(seconds=1)
_DAY_S = 86_400
_ONE_DAY = timedelta(days=1)


# --- epoch helpers -------------------------------------------------------------


def to_epoch(moment: datetime) -> float:
    """Epoch seconds of an aware datetime; a naive one raises ``TaskValidationError``."""
    return _epoch("datetime", moment)


def from_epoch(epoch_s: float, tz: tzinfo = UTC) -> datetime:
    """The aware datetime of ``epoch_s`` in ``tz`` (UTC by default)."""
    return datetime.fromtimestamp(epoch_s, tz)


def _epoch(field: str, value: float | datetime) -> float:
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise TaskValidationError(field, value, "naive datetime; attach a tzinfo (e.g. UTC)")
        return value.timestamp()
    if not is_number(value):
        raise TaskValidationError(field, value, "must be epoch seconds or an aware datetime")
    return require_number(field, value)


def _instant(field: str, value: float | datetime) -> float:
    """Epoch seconds of a fire time or a first fire: year 1 to the end of year 9998."""
    epoch = _epoch(field, value)
    if not MIN_EPOCH_S <= epoch <= MAX_EPOCH_S:
        raise TaskValidationError(field, value, "must fall between year 1 and the end of 9998")
    return epoch


def _optional_instant(field: str, value: float | datetime | None) -> float | None:
    return None if value is None else _instant(field, value)


def _optional_epoch(field: str, value: float | datetime | None) -> float | None:
    return None if value is None else _epoch(field, value)


def _check_bounds(start: float | None, end: float | None) -> None:
    if start is not None and end is not None and end < start:
        raise TaskValidationError("end", end, f"is before start={start}")


def _check_reference(after_epoch: float) -> None:
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
        _check_window(start_epoch, end_epoch, limit)
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


def _check_window(start_epoch: float, end_epoch: float, limit: int) -> None:
    _check_reference(start_epoch)
    if not math.isfinite(end_epoch):
        raise TaskValidationError("end_epoch", end_epoch, "must be finite epoch seconds")
    require_int("limit", limit, minimum=0)


class DateTrigger(Trigger):
    """Fires exactly once, at ``at`` (epoch seconds or an aware datetime)."""

    __slots__ = ("_at",)
    kind = "date"

    def __init__(self, at: float | datetime) -> None:
        self._at = _instant("at", at)

    @property
    def at(self) -> float:
        return self._at

    def next_fire(self, after_epoch: float) -> float | None:
        _check_reference(after_epoch)
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
        self._start = _optional_instant("start", start)
        self._end = _optional_epoch("end", end)
        _check_bounds(self._start, self._end)

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
        _check_reference(after_epoch)
        if after_epoch >= self._last:
            return None
        fire = self._fire(self._first_step_after(after_epoch))
        return fire if fire <= self._last else None

    def fires_between(self, start_epoch: float, end_epoch: float, limit: int) -> list[float]:
        _check_window(start_epoch, end_epoch, limit)
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


class CronTrigger(Trigger):
    """Fires at the local wall-clock times a cron expression names, in an IANA zone.

    ``start`` and ``end`` (epoch seconds or aware datetimes, both inclusive) bound
    the fires. The syntax, the DST rule and the search bounds are described in
    the module docstring. Instances are immutable apart from a private cache of
    the current day, which makes repeated calls on one day a ``bisect``.
    """

    __slots__ = ("_end", "_expression", "_rule", "_start", "_steady_day", "_times", "_zone")
    kind = "cron"

    def __init__(
        self,
        expression: str,
        timezone: str | ZoneInfo = "UTC",
        *,
        start: float | datetime | None = None,
        end: float | datetime | None = None,
    ) -> None:
        if not isinstance(expression, str):
            raise TaskValidationError("cron", expression, "must be a string")
        self._rule, self._times = parse_cron(expression)
        self._expression = " ".join(expression.split())
        self._zone = load_zone(timezone)
        self._start = _optional_instant("start", start)
        self._end = _optional_epoch("end", end)
        _check_bounds(self._start, self._end)
        self._steady_day: tuple[int, int] | None = None  # [midnight, next midnight) epochs

    @property
    def expression(self) -> str:
        return self._expression

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    @property
    def start(self) -> float | None:
        return self._start

    @property
    def end(self) -> float | None:
        return self._end

    def next_fire(self, after_epoch: float) -> float | None:
        _check_reference(after_epoch)
        reference = after_epoch
        if self._start is not None:
            # Cron fires fall on whole seconds, so "fire >= start" is "fire > ceil(start) - 1".
            reference = max(reference, math.ceil(self._start) - 1)
        earliest = math.floor(reference) + 1
        if self._end is not None and earliest > self._end:
            return None
        fire = self._fire_on_steady_day(earliest)
        if fire is None:
            fire = self._search(earliest)
        if fire is None or (self._end is not None and fire > self._end):
            return None
        return float(fire)

    def fires_between(self, start_epoch: float, end_epoch: float, limit: int) -> list[float]:
        _check_window(start_epoch, end_epoch, limit)
        last = end_epoch if self._end is None else min(end_epoch, self._end)
        fires: list[float] = []
        fire = self.next_fire(start_epoch)
        while fire is not None and fire <= last and len(fires) < limit:
            fires.append(fire)
            steady = self._steady_day
            if steady is not None and steady[0] <= fire < steady[1]:
                # The rest of a day with one UTC offset is plain arithmetic.
                first = bisect_right(self._times, fire - steady[0])
                stop = bisect_right(self._times, last - steady[0], lo=first)
                stop = min(stop, first + limit - len(fires))
                fires.extend(float(steady[0] + t) for t in self._times[first:stop])
            fire = self.next_fire(fires[-1])
        return fires

    def to_dict(self) -> TriggerDict:
        return {
            "kind": self.kind,
            "version": TRIGGER_FORMAT_VERSION,
            "expression": self._expression,
            "timezone": self._zone.key,
            "start": self._start,
            "end": self._end,
        }

    def _fire_on_steady_day(self, earliest: int) -> int | None:
        steady = self._steady_day
        if steady is None or not steady[0] <= earliest < steady[1]:
            return None
        index = bisect_left(self._times, earliest - steady[0])
        return steady[0] + self._times[index] if index < len(self._times) else None

    def _search(self, earliest: int) -> int | None:
        """The first fire at or after ``earliest`` (whole epoch seconds), ignoring start/end."""
        try:
            local = datetime.fromtimestamp(earliest, self._zone)
            if local.fold:
                earliest = end_of_repeated_span(earliest, local, self._zone)
                local = datetime.fromtimestamp(earliest, self._zone)
            before = datetime.fromtimestamp(earliest - 1, self._zone)
        except (OverflowError, ValueError, OSError):
            return None  # outside the range datetime can represent
        if local.replace(tzinfo=None) - before.replace(tzinfo=None) > _ONE_SECOND:
            # ``earliest`` is the end of a spring-forward gap: wall times inside the
            # gap fire at this very instant, so the search starts inside the gap.
            local = before + _ONE_SECOND
        day = local.date()
        time_of_day = local.hour * 3600 + local.minute * 60 + local.second
        while (wall := self._next_wall_time(day, time_of_day)) is not None:
            day, time_of_day = wall
            fire = self._to_epoch(day, time_of_day)
            if fire >= earliest:  # false only for gap times before a gap ``earliest`` ends
                return fire
            time_of_day += 1
        return None

    def _to_epoch(self, day: date, time_of_day: int) -> int:
        """The instant a matching wall time fires at; remembers ``day`` if it keeps one offset."""
        midnight = steady_day_start(self._zone, day.toordinal())
        if midnight is None:
            self._steady_day = None
            return wall_to_epoch(day, time_of_day, self._zone)
        self._steady_day = (midnight, midnight + _DAY_S)
        return midnight + time_of_day

    def _next_wall_time(self, day: date, time_of_day: int) -> tuple[date, int] | None:
        """The first matching local wall time at or after ``time_of_day`` on ``day``."""
        if day.year > LAST_YEAR:
            return None
        if time_of_day < _DAY_S and self._rule.matches(day):
            index = bisect_left(self._times, time_of_day)
            if index < len(self._times):
                return day, self._times[index]
        next_day = next_matching_day(self._rule, day + _ONE_DAY, search_limit(day))
        return None if next_day is None else (next_day, self._times[0])


# --- persistence ---------------------------------------------------------------


def trigger_from_dict(data: Mapping[str, object]) -> Trigger:
    """Rebuild a trigger from :meth:`Trigger.to_dict` output (e.g. decoded JSON).

    Raises ``TaskValidationError`` (field ``"trigger"``, or the field the trigger
    itself rejects) for an unknown kind or version, missing or extra keys, or bad
    values; a store reading its own records may wrap that in ``StoreCorruptError``.
    """
    if not isinstance(data, Mapping):
        raise TaskValidationError("trigger", data, "must be a mapping")
    kind, version = data.get("kind"), data.get("version")
    if not isinstance(kind, str) or kind not in _BUILDERS:
        raise TaskValidationError("trigger", data, f"unknown kind {kind!r}")
    if type(version) is not int or version != TRIGGER_FORMAT_VERSION:
        raise TaskValidationError(
            "trigger", data, f"unsupported version {version!r} (this asched reads 1)"
        )
    keys, build = _BUILDERS[kind]
    expected = {"kind", "version", *keys}
    if set(data) != expected:
        raise TaskValidationError(
            "trigger", data, f"{kind} triggers need exactly {sorted(expected)}"
        )
    return build(data)


def _str_field(data: Mapping[str, object], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TaskValidationError("trigger", data, f"{key!r} must be a string")
    return value


def _number_field(data: Mapping[str, object], key: str) -> float:
    value = data[key]
    if not is_number(value):
        raise TaskValidationError("trigger", data, f"{key!r} must be a number")
    return float(value)


def _optional_number_field(data: Mapping[str, object], key: str) -> float | None:
    return None if data[key] is None else _number_field(data, key)


_BUILDERS: dict[str, tuple[tuple[str, ...], Callable[[Mapping[str, object]], Trigger]]] = {
    "cron": (
        ("expression", "timezone", "start", "end"),
        lambda d: CronTrigger(
            _str_field(d, "expression"),
            _str_field(d, "timezone"),
            start=_optional_number_field(d, "start"),
            end=_optional_number_field(d, "end"),
        ),
    ),
    "interval": (
        ("seconds", "start", "end"),
        lambda d: IntervalTrigger(
            _number_field(d, "seconds"),
            start=_optional_number_field(d, "start"),
            end=_optional_number_field(d, "end"),
        ),
    ),
    "date": (("at",), lambda d: DateTrigger(_number_field(d, "at"))),
}
