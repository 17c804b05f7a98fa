"""CronTrigger: local wall-clock times a cron expression names, in an IANA zone.

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
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

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
from asched.core.triggers.base import (
    TRIGGER_FORMAT_VERSION,
    Trigger,
    TriggerDict,
    check_bounds,
    check_reference,
    check_window,
    optional_epoch,
    optional_instant,
)
from asched.errors import TaskValidationError

_ONE_SECOND = timedelta(seconds=1)
_DAY_S = 86_400
_ONE_DAY = timedelta(days=1)


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
        self._start = optional_instant("start", start)
        self._end = optional_epoch("end", end)
        check_bounds(self._start, self._end)
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
        check_reference(after_epoch)
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
        check_window(start_epoch, end_epoch, limit)
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
