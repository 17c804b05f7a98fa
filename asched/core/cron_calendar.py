"""Cron expressions against the calendar and a time zone: parsing, matching days,
and mapping local wall-clock times to instants across daylight-saving changes.

The pure calendar half of :class:`asched.core.triggers.CronTrigger`; the rules
it implements are described there.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from asched.core.cron_syntax import check_fields
from asched.errors import TaskValidationError

DAY_S = 86_400
ONE_DAY = timedelta(days=1)
_CYCLE_YEARS = 400  # 146,097 days: whole weeks, so dates *and* weekdays repeat
LAST_YEAR = 9998  # leaves room for "the day after" without overflowing date.max
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True, slots=True)
class _DayRule:
    """Which calendar days a cron expression fires on (months and day fields)."""

    months: frozenset[int]
    any_day_of_month: bool
    days_of_month: frozenset[int]
    last_day_of_month: bool  # 'L'
    any_weekday: bool
    weekdays: frozenset[int]  # 0 = Sunday
    nth_weekdays: frozenset[tuple[int, int]]  # (weekday, n): '5#3' is (5, 3)
    last_weekdays: frozenset[int]  # 'L5': the last Friday of the month

    def matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        if self.any_day_of_month:
            return self.any_weekday or self._weekday_matches(day)
        if self.any_weekday:
            return self._day_of_month_matches(day)
        return self._day_of_month_matches(day) or self._weekday_matches(day)

    def _day_of_month_matches(self, day: date) -> bool:
        return day.day in self.days_of_month or (
            self.last_day_of_month and day.day == _month_length(day)
        )

    def _weekday_matches(self, day: date) -> bool:
        weekday = day.isoweekday() % 7
        if weekday in self.weekdays or (weekday, (day.day + 6) // 7) in self.nth_weekdays:
            return True
        return weekday in self.last_weekdays and day.day + 7 > _month_length(day)


def _month_length(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def next_matching_day(rule: _DayRule, day: date, until: date) -> date | None:
    """The first day in ``[day, until]`` that ``rule`` matches."""
    while day <= until:
        if day.month not in rule.months:
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        elif rule.matches(day):
            return day
        else:
            day += ONE_DAY
    return None


def search_limit(day: date) -> date:
    return date(min(day.year + _CYCLE_YEARS + 1, LAST_YEAR), 12, 31)


@functools.lru_cache(maxsize=1024)
def _times_of_day(
    hours: tuple[int, ...], minutes: tuple[int, ...], seconds: tuple[int, ...]
) -> tuple[int, ...]:
    """Seconds after local midnight that match, sorted (shared by equal expressions)."""
    return tuple(h * 3600 + m * 60 + s for h in hours for m in minutes for s in seconds)


def _values(field: Sequence[int | str], full_range: range) -> tuple[int, ...]:
    # A '*' anywhere in a list ('*,5') means every value, as a lone '*' does.
    return tuple(full_range) if "*" in field else tuple(sorted({int(v) for v in field}))


@functools.lru_cache(maxsize=1024)
def parse_cron(expression: str) -> tuple[_DayRule, tuple[int, ...]]:
    """Validate ``expression`` and return its day rule and matching times of day.

    Cached: croniter's parser costs about 100 µs and many schedules share an expression.
    """

    def invalid(reason: str) -> TaskValidationError:
        return TaskValidationError("cron", expression, reason)

    if not expression.isascii():
        raise invalid("must be ASCII")
    text = _ALIASES.get(expression.strip().lower(), expression)
    fields = text.split()
    if len(fields) == 7:
        raise invalid("a year field is not supported")
    if len(fields) not in (5, 6):
        raise invalid(
            "needs 5 fields (minute hour day-of-month month day-of-week) "
            f"or 6 with seconds last, got {len(fields)}"
        )
    check_fields(fields, invalid)
    try:
        expanded, nth = croniter.expand(" ".join(fields))
    except (CroniterError, ValueError, LookupError, OverflowError) as exc:
        raise invalid(f"not a valid cron expression ({exc})") from None
    rule = _day_rule(expanded[2], expanded[3], expanded[4], nth, invalid)
    first_cycle_day = date(2000, 1, 1)
    if next_matching_day(rule, first_cycle_day, search_limit(first_cycle_day)) is None:
        raise invalid("it can never fire: no calendar day matches its day and month fields")
    seconds = _values(expanded[5], range(60)) if len(expanded) == 6 else (0,)
    times = _times_of_day(_values(expanded[1], range(24)), _values(expanded[0], range(60)), seconds)
    return rule, times


def _day_rule(
    day_of_month: Sequence[int | str],
    month: Sequence[int | str],
    weekday: Sequence[int | str],
    nth: Mapping[int, AbstractSet[int | Literal["l"]]],
    invalid: Callable[[str], TaskValidationError],
) -> _DayRule:
    """The day rule of the expanded day fields; a '*' in a list makes its field unrestricted."""
    any_day_of_month = "*" in day_of_month
    any_weekday = "*" in weekday
    if any_weekday:
        nth = {}  # '*,5#3' is every day: the '#'/'L' days add nothing
    if nth and (set(weekday) != set(nth) or not any_day_of_month):
        raise invalid("'#' and 'L' weekdays cannot be mixed with plain weekdays or days of month")
    return _DayRule(
        months=frozenset(_values(month, range(1, 13))),
        any_day_of_month=any_day_of_month,
        days_of_month=frozenset(int(v) for v in day_of_month if v not in ("*", "l")),
        last_day_of_month="l" in day_of_month,
        any_weekday=any_weekday,
        weekdays=frozenset() if nth else frozenset(int(v) for v in weekday if v != "*"),
        nth_weekdays=frozenset((d, n) for d, ns in nth.items() for n in ns if n != "l"),
        last_weekdays=frozenset(d for d, ns in nth.items() if "l" in ns),
    )


def load_zone(timezone: str | ZoneInfo) -> ZoneInfo:
    if isinstance(timezone, ZoneInfo):
        if not timezone.key or timezone.key == "localtime":
            raise TaskValidationError("timezone", timezone, "needs an IANA key to be persisted")
        return timezone
    if not isinstance(timezone, str) or timezone == "localtime":
        raise TaskValidationError("timezone", timezone, "must be an IANA zone name")
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TaskValidationError(
            "timezone", timezone, "unknown IANA zone name (e.g. 'Europe/Madrid', 'UTC')"
        ) from None


def wall_to_epoch(day: date, time_of_day: int, zone: ZoneInfo) -> int:
    """The instant a local wall time fires at, under the DST rule of the module docstring."""
    hour, rest = divmod(time_of_day, 3600)
    minute, second = divmod(rest, 60)
    wall = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=zone)
    fire = int(wall.timestamp())  # fold=0: a repeated wall time maps to its first occurrence
    back = datetime.fromtimestamp(fire, zone)
    if (back.day, back.hour, back.minute, back.second) == (day.day, hour, minute, second):
        return fire
    # The wall time is in a gap: fold=0 read it with the offset before the gap and
    # fold=1 with the offset after, so the gap ends somewhere in between.
    return _offset_change(int(wall.replace(fold=1).timestamp()), fire, zone)


def _offset_change(before: int, after: int, zone: ZoneInfo) -> int:
    """The first second in ``(before, after]`` that has the UTC offset of ``after``."""
    target = datetime.fromtimestamp(after, zone).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == target:
            after = middle
        else:
            before = middle
    return after


def end_of_repeated_span(epoch_s: int, local: datetime, zone: ZoneInfo) -> int:
    """For an instant in the second pass of a repeated (fall-back) span, when that span ends.

    Every wall time of the span already fired during the first pass.
    """
    first_pass = int(local.replace(fold=0).timestamp())
    transition = _offset_change(first_pass, epoch_s, zone)
    return transition + (epoch_s - first_pass)


@functools.lru_cache(maxsize=4096)
def steady_day_start(zone: ZoneInfo, ordinal: int) -> int | None:
    """Local midnight of the day as epoch seconds, if the whole day keeps one UTC offset."""
    day = date.fromordinal(ordinal)
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())
    first = datetime.fromtimestamp(midnight, zone)
    last = datetime.fromtimestamp(midnight + DAY_S - 1, zone)
    steady = (first.date(), first.hour, first.minute, first.second) == (day, 0, 0, 0)
    return midnight if steady and first.utcoffset() == last.utcoffset() else None
