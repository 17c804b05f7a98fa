"""Cron spellings that peers' expectation tables read one way and croniter another.

Each case is a table row: a ``*`` inside a list, equal ranges spelled with
names and numbers, ``*`` beside ``#``/``L`` weekdays, and steps wider than their
field. Every refusal is a ``TaskValidationError`` naming the cron field and the
part; no other exception escapes, whatever the text.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asched import Scheduler, TaskValidationError
from asched.core.triggers import CronTrigger
from asched.testing import FakeClock

# A window with the spring-forward day of Europe/Madrid (2026-03-29) in it.
WINDOW_START = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
WINDOW_END = datetime(2026, 4, 20, tzinfo=UTC).timestamp()
ZONES = ["UTC", "Europe/Madrid"]
# 2027-01-04 is a Monday; 08:00 UTC.
MONDAY_8AM = datetime(2027, 1, 4, 8, 0, tzinfo=UTC).timestamp()


def fires(expression: str, zone: str = "UTC", limit: int = 400) -> list[float]:
    return CronTrigger(expression, zone).fires_between(WINDOW_START, WINDOW_END, limit)


# --- a '*' inside a list --------------------------------------------------------

STAR_IN_A_LIST = [
    # expression, the plain expression it must fire exactly like
    ("* * * * *,0", "* * * * *"),
    ("0 0 *,15 * *", "0 0 * * *"),
    ("0 0 15,* * *", "0 0 * * *"),
    ("*,5 * * * *", "* * * * *"),
    ("0 *,3 * * *", "0 * * * *"),
    ("0 0 * *,3 *", "0 0 * * *"),
    ("0 0 * * * *,5", "0 0 * * * *"),
    ("*/2,* 0 * * *", "* 0 * * *"),
    ("0 0 *,L * *", "0 0 * * *"),
    # '*' beside '#' and 'L' weekdays: every day
    ("0 0 * * *,sat#3", "0 0 * * *"),
    ("0 0 * * *,L5", "0 0 * * *"),
    ("0 0 * * 0-6,5#3", "0 0 * * *"),
    # an unrestricted day field leaves the other one to decide alone
    ("0 0 *,15 * 1", "0 0 * * 1"),
    ("0 0 15 * *,1", "0 0 15 * *"),
    ("0 0 15 * *,5#3", "0 0 15 * *"),
]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize(("expression", "plain"), STAR_IN_A_LIST)
def test_a_star_in_a_list_means_every_value(expression: str, plain: str, zone: str) -> None:
    expected = fires(plain, zone)
    assert expected  # the window is long enough for every row to fire
    assert fires(expression, zone) == expected


def test_the_day_field_examples_fire_every_day() -> None:
    midnight = datetime(2026, 1, 1, tzinfo=UTC).timestamp()  # a Thursday
    week = [datetime(2026, 1, day, tzinfo=UTC).date() for day in range(1, 8)]
    for expression in ("* * * * *,0", "0 0 *,15 * *", "0 0 * * *,sat#3"):
        trigger = CronTrigger(expression)
        fired = trigger.fires_between(midnight - 1, midnight + 7 * 86_400 - 1, 20_000)
        assert sorted({datetime.fromtimestamp(f, UTC).date() for f in fired}) == week


# --- equal ranges, compared as values ---------------------------------------------

EQUAL_RANGES = [
    # expression, the cron field the message names
    ("0 0 1 jan-1 *", "month"),
    ("0 0 1 1-jan *", "month"),
    ("0 0 1 jan-01 *", "month"),
    ("0 0 1 dec-12/2 *", "month"),
    ("0 0 * * 0-sun", "day-of-week"),
    ("0 0 * * sun-0", "day-of-week"),
    ("0 0 * * mon-1", "day-of-week"),
    ("0 0 * * 1-MON", "day-of-week"),
    ("0 0 * * 7-0", "day-of-week"),
    ("0 0 * * 7-sun", "day-of-week"),
    ("0 0 * * 7-7", "day-of-week"),
    ("0 0 * * fri-5,1", "day-of-week"),
    ("05-5 * * * *", "minute"),
    ("0 3-03 * * *", "hour"),
    ("0 0 9-9 * *", "day-of-month"),
    ("0 0 * * * 7-7", "second"),
]


@pytest.mark.parametrize(("expression", "field"), EQUAL_RANGES)
def test_an_equal_range_is_refused_however_it_is_spelled(expression: str, field: str) -> None:
    with pytest.raises(TaskValidationError, match="equal range") as caught:
        CronTrigger(expression)
    assert caught.value.field == "cron"
    assert caught.value.value == expression
    assert f"{field} field" in str(caught.value)


RANGES_THAT_READ_AS_WRITTEN = [
    ("0 0 * * 0-7", "0 0 * * *"),  # the whole week, Sunday to Sunday
    ("0 0 * * sun-7", "0 0 * * *"),
    ("0 0 * * sat-sun", "0 0 * * 0,6"),
    ("0 0 * * 5-mon", "0 0 * * 0,1,5,6"),
    ("0 0 * jan-2 *", "0 0 * 1,2 *"),
    ("0 0 * mar-4 *", "0 0 * 3,4 *"),
]


@pytest.mark.parametrize(("expression", "plain"), RANGES_THAT_READ_AS_WRITTEN)
def test_unequal_mixed_spellings_read_as_written(expression: str, plain: str) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    end = start + 366 * 86_400
    expected = CronTrigger(plain).fires_between(start, end, 400)
    assert expected
    assert CronTrigger(expression).fires_between(start, end, 400) == expected


_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def _spell(value: int, names: list[str], offset: int, as_name: bool) -> str:
    index = value - offset
    return names[index % len(names)] if as_name and 0 <= index < len(names) else str(value)


def _expected(low: int, high: int, top: int, bottom: int) -> set[int]:
    if low <= high:
        return set(range(low, high + 1))
    return set(range(low, top + 1)) | set(range(bottom, high + 1))  # wraps around


@settings(max_examples=150)
@given(low=st.integers(0, 7), high=st.integers(0, 7), names=st.tuples(st.booleans(), st.booleans()))
def test_weekday_ranges_are_refused_exactly_when_both_ends_are_one_day(
    low: int, high: int, names: tuple[bool, bool]
) -> None:
    text = f"{_spell(low, _WEEKDAYS, 0, names[0])}-{_spell(high, _WEEKDAYS, 0, names[1])}"
    same_day = low % 7 == high % 7 and (low, high) != (0, 7)
    if same_day:
        with pytest.raises(TaskValidationError, match="equal range"):
            CronTrigger(f"0 0 * * {text}")
        return
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    week = CronTrigger(f"0 0 * * {text}").fires_between(start, start + 7 * 86_400, 10)
    weekdays = {datetime.fromtimestamp(f, UTC).isoweekday() % 7 for f in week}
    assert weekdays == {v % 7 for v in _expected(low, high, 7, 0)}


@settings(max_examples=150)
@given(
    low=st.integers(1, 12), high=st.integers(1, 12), names=st.tuples(st.booleans(), st.booleans())
)
def test_month_ranges_are_refused_exactly_when_both_ends_are_one_month(
    low: int, high: int, names: tuple[bool, bool]
) -> None:
    text = f"{_spell(low, _MONTHS, 1, names[0])}-{_spell(high, _MONTHS, 1, names[1])}"
    if low == high:
        with pytest.raises(TaskValidationError, match="equal range"):
            CronTrigger(f"0 0 1 {text} *")
        return
    start = datetime(2025, 12, 31, tzinfo=UTC).timestamp()
    year = CronTrigger(f"0 0 1 {text} *").fires_between(start, start + 366 * 86_400, 20)
    assert {datetime.fromtimestamp(f, UTC).month for f in year} == _expected(low, high, 12, 1)


# --- steps ------------------------------------------------------------------------

STEPS_OUT_OF_RANGE = [
    ("*/9999999 * * * *", "minute"),
    ("*/0 * * * *", "minute"),
    ("*/61 * * * *", "minute"),
    ("0 */25 * * *", "hour"),
    ("0 0 */32 * *", "day-of-month"),
    ("0 0 1-5/100 * *", "day-of-month"),
    ("0 0 * */13 *", "month"),
    ("0 0 * * */8", "day-of-week"),
    ("0 0 * * 1/99999999999999999999", "day-of-week"),
    ("0 0 * * * */61", "second"),
]


@pytest.mark.parametrize(("expression", "field"), STEPS_OUT_OF_RANGE)
def test_a_step_wider_than_its_field_is_refused(expression: str, field: str) -> None:
    with pytest.raises(TaskValidationError, match="step") as caught:
        CronTrigger(expression)
    assert caught.value.field == "cron"
    assert f"{field} field" in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "plain"),
    [("*/60 * * * *", "0 * * * *"), ("0 0 * * */7", "0 0 * * 0"), ("0 0 * */12 *", "0 0 * 1 *")],
)
def test_a_step_as_wide_as_its_field_gives_the_first_value(expression: str, plain: str) -> None:
    assert fires(expression) == fires(plain)


# --- no other exception, whatever the text ------------------------------------------

_TOKENS = st.sampled_from(
    ["*", "?", "L", "W", "#", "-", "/", ",", "0", "1", "5", "7", "12", "31", "59", "60",
     "99999999999", "jan", "SUN", "mon", "dec", "H", "R", "5#3", "5#6", "1.5", "x"]
)  # fmt: skip
_EXPRESSIONS = st.lists(
    st.lists(_TOKENS, min_size=1, max_size=5).map("".join), min_size=4, max_size=7
).map(" ".join)


@settings(max_examples=400)
@given(expression=_EXPRESSIONS)
def test_any_text_is_a_trigger_or_a_typed_refusal(expression: str) -> None:
    try:
        trigger = CronTrigger(expression)
    except TaskValidationError as refused:
        assert refused.field == "cron"
        return
    fire = trigger.next_fire(WINDOW_START)
    assert fire is None or fire > WINDOW_START


# --- through the public API ----------------------------------------------------------


@pytest.fixture
def monday_clock() -> FakeClock:
    return FakeClock(MONDAY_8AM)


@pytest.mark.parametrize(
    "expression",
    ["0 0 1 jan-1 *", "0 0 * * 0-sun", "0 0 * * mon-1", "*/9999999 * * * *", "0 0 * * */8"],
)
async def test_a_refused_expression_stores_no_schedule(
    make_scheduler: Callable[..., Scheduler], monday_clock: FakeClock, expression: str
) -> None:
    s = make_scheduler(clock=monday_clock)
    s.task("report")(_noop)
    async with s:
        with pytest.raises(TaskValidationError) as caught:
            await s.schedule_recurring("report", cron=expression, timezone="UTC")
        assert caught.value.field == "cron"
        assert await s.list_schedules() == []


async def test_a_star_in_the_day_of_month_list_fires_every_day(
    make_scheduler: Callable[..., Scheduler], monday_clock: FakeClock
) -> None:
    s = make_scheduler(clock=monday_clock)
    ran: list[float] = []

    @s.task("report")
    async def report() -> None:
        ran.append(monday_clock.now())

    async with s:
        sid = await s.schedule_recurring("report", cron="0 0 *,15 * *", timezone="UTC")
        info = await s.get_schedule(sid)
        assert info["next_fire"] == datetime(2027, 1, 5, tzinfo=UTC)
        await monday_clock.advance(3 * 86_400)
    assert [datetime.fromtimestamp(f, UTC).day for f in ran] == [5, 6, 7]


async def test_a_star_in_the_minute_list_fires_every_minute(
    make_scheduler: Callable[..., Scheduler], monday_clock: FakeClock
) -> None:
    s = make_scheduler(clock=monday_clock)
    ran: list[float] = []

    @s.task("tick")
    async def tick() -> None:
        ran.append(monday_clock.now())

    async with s:
        await s.schedule_recurring("tick", cron="*,5 * * * *", timezone="UTC")
        await monday_clock.advance(180)
    assert [f - MONDAY_8AM for f in ran] == [60.0, 120.0, 180.0]


async def _noop() -> None:
    return None
