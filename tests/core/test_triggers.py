from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from asched.core.triggers import (
    TRIGGER_FORMAT_VERSION,
    CronTrigger,
    DateTrigger,
    IntervalTrigger,
    Trigger,
    fires_between,
    from_epoch,
    to_epoch,
    trigger_from_dict,
)
from asched.errors import TaskValidationError

# Zones with the awkward cases: DST both ways, no DST, a half-hour offset, a
# 30-minute DST shift, DST at midnight, and a whole skipped day (Apia, 2011-12-30).
ZONES = [
    "UTC",
    "Europe/Madrid",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Apia",
]


def at(wall: str, zone: str = "UTC") -> float:
    """Epoch of a local wall time (its first occurrence if it is repeated)."""
    return datetime.fromisoformat(wall).replace(tzinfo=ZoneInfo(zone)).timestamp()


def local(epoch: float, zone: str) -> str:
    return from_epoch(epoch, ZoneInfo(zone)).isoformat()


def chain(trigger: Trigger, after: float, count: int) -> list[float]:
    fires: list[float] = []
    for _ in range(count):
        fire = trigger.next_fire(after)
        assert fire is not None
        fires.append(fire)
        after = fire
    return fires


# --- cron syntax ---------------------------------------------------------------

SYNTAX = [
    # expression, after (UTC wall time), the next fires (UTC wall times)
    ("* * * * *", "2024-01-01T00:00:30", ["2024-01-01T00:01:00", "2024-01-01T00:02:00"]),
    ("*/15 * * * *", "2024-01-01T00:00:00", ["2024-01-01T00:15:00", "2024-01-01T00:30:00"]),
    ("5,35 */6 * * *", "2024-01-01T00:10:00", ["2024-01-01T00:35:00", "2024-01-01T06:05:00"]),
    ("0 9 * * MON-FRI", "2024-01-05T10:00:00", ["2024-01-08T09:00:00", "2024-01-09T09:00:00"]),
    ("0 12 * JAN,JUL SUN", "2024-01-29T00:00:00", ["2024-07-07T12:00:00", "2024-07-14T12:00:00"]),
    ("0 0 * * 7", "2024-01-01T00:00:00", ["2024-01-07T00:00:00", "2024-01-14T00:00:00"]),
    ("0 0 ? * *", "2024-01-01T00:00:00", ["2024-01-02T00:00:00", "2024-01-03T00:00:00"]),
    # a restricted day of month OR a restricted weekday: the 13th or any Friday
    ("0 0 13 * 5", "2024-09-01T00:00:00", ["2024-09-06T00:00:00", "2024-09-13T00:00:00"]),
    ("0 0 L * *", "2024-02-01T00:00:00", ["2024-02-29T00:00:00", "2024-03-31T00:00:00"]),
    ("0 0 * * 5#3", "2024-01-01T00:00:00", ["2024-01-19T00:00:00", "2024-02-16T00:00:00"]),
    ("0 0 * * L5", "2024-01-01T00:00:00", ["2024-01-26T00:00:00", "2024-02-23T00:00:00"]),
    ("0 0 * 2 5#5", "2024-01-01T00:00:00", ["2036-02-29T00:00:00", "2064-02-29T00:00:00"]),
    # month ends: the 31st skips short months, the 30th skips February
    (
        "0 0 31 * *",
        "2024-01-31T00:00:00",
        ["2024-03-31T00:00:00", "2024-05-31T00:00:00", "2024-07-31T00:00:00"],
    ),
    ("0 0 30 * *", "2024-01-30T00:00:00", ["2024-03-30T00:00:00", "2024-04-30T00:00:00"]),
    # leap days: every four years, and 2100 is not a leap year
    ("0 0 29 2 *", "2024-03-01T00:00:00", ["2028-02-29T00:00:00", "2032-02-29T00:00:00"]),
    ("0 0 29 2 *", "2096-03-01T00:00:00", ["2104-02-29T00:00:00"]),
    # a sixth field is seconds, last (croniter's convention)
    ("0 9 * * * 30", "2024-01-01T00:00:00", ["2024-01-01T09:00:30", "2024-01-02T09:00:30"]),
    ("* * * * * */20", "2024-01-01T00:00:00", ["2024-01-01T00:00:20", "2024-01-01T00:00:40"]),
    ("30 * * * * 15,45", "2024-01-01T00:30:15", ["2024-01-01T00:30:45", "2024-01-01T01:30:15"]),
    # aliases, any case, surrounding blanks ignored
    ("@hourly", "2024-01-01T00:00:00", ["2024-01-01T01:00:00", "2024-01-01T02:00:00"]),
    ("@daily", "2024-01-01T00:00:00", ["2024-01-02T00:00:00", "2024-01-03T00:00:00"]),
    ("@midnight", "2024-01-01T12:00:00", ["2024-01-02T00:00:00", "2024-01-03T00:00:00"]),
    ("@weekly", "2024-01-01T00:00:00", ["2024-01-07T00:00:00", "2024-01-14T00:00:00"]),
    ("@monthly", "2024-01-15T00:00:00", ["2024-02-01T00:00:00", "2024-03-01T00:00:00"]),
    ("@yearly", "2024-01-01T00:00:00", ["2025-01-01T00:00:00", "2026-01-01T00:00:00"]),
    ("@annually", "2024-06-01T00:00:00", ["2025-01-01T00:00:00", "2026-01-01T00:00:00"]),
    (" @DAILY ", "2024-01-01T00:00:00", ["2024-01-02T00:00:00", "2024-01-03T00:00:00"]),
]


@pytest.mark.parametrize(("expression", "after", "expected"), SYNTAX)
def test_cron_syntax(expression: str, after: str, expected: list[str]) -> None:
    trigger = CronTrigger(expression)
    fires = chain(trigger, at(after), len(expected))
    assert fires == [at(wall) for wall in expected]


INVALID = [
    ("", "needs 5 fields"),
    ("* * * *", "needs 5 fields"),
    ("* * * * * * 2030", "year field"),
    ("60 * * * *", "not a valid cron"),
    ("* 24 * * *", "not a valid cron"),
    ("0 0 0 * *", "not a valid cron"),
    ("0 0 32 * *", "not a valid cron"),
    ("0 0 * 13 *", "not a valid cron"),
    ("0 0 * * 8", "not a valid cron"),
    ("0 0 * * * 60", "not a valid cron"),
    ("*/0 * * * *", "not a valid cron"),
    ("a b c d e", "not a valid cron"),
    ("@reboot", "needs 5 fields"),
    ("0 0 30 2 *", "never fire"),
    ("0 0 31 4 *", "never fire"),
    ("0 0 31 2,4,6,9,11 *", "never fire"),
    ("H * * * *", "hashed/random"),
    ("R 0 * * *", "hashed/random"),
    ("0 0 15W * *", "nearest-weekday"),
    ("0 0 1 * 5#2", "cannot be mixed"),
    ("0 0 * * 1-5,5#3", "not a valid cron"),
    ("0 0 L * L5", "cannot be mixed"),
    ("0 0 * * 1,5#2", "not a valid cron"),
    ("0 0 * * 5#6", "not a valid cron"),
    ("5-5 * * * *", "equal range"),
    ("0 0 * JAN-jan *", "equal range"),
    ("0\u00a00 * * *", "ASCII"),
]


@pytest.mark.parametrize(("expression", "reason"), INVALID)
def test_invalid_cron_is_refused_with_a_reason(expression: str, reason: str) -> None:
    with pytest.raises(TaskValidationError, match=reason) as caught:
        CronTrigger(expression)
    assert caught.value.field == "cron"
    assert caught.value.value == expression
    assert isinstance(caught.value, ValueError)


def test_cron_must_be_a_string() -> None:
    with pytest.raises(TaskValidationError, match="must be a string"):
        CronTrigger(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus", "", "Europe", "../etc/passwd", "utc", "localtime"]
)
def test_unknown_time_zone_is_refused(zone: str) -> None:
    with pytest.raises(TaskValidationError) as caught:
        CronTrigger("0 0 * * *", zone)
    assert caught.value.field == "timezone"


def test_zone_object_and_name_are_equivalent() -> None:
    by_name = CronTrigger("0 9 * * *", "Asia/Tokyo")
    by_object = CronTrigger("0 9 * * *", ZoneInfo("Asia/Tokyo"))
    assert by_name == by_object
    assert by_object.zone.key == "Asia/Tokyo"
    assert by_name.next_fire(at("2023-12-31T12:00:00")) == at("2024-01-01T09:00:00", "Asia/Tokyo")


# --- daylight saving time --------------------------------------------------------

DST = [
    # spring forward: a wall time in the gap fires once, when the gap ends
    (
        "30 2 * * *",
        "Europe/Madrid",
        "2024-03-30T03:00:00",
        ["2024-03-31T03:00:00+02:00", "2024-04-01T02:30:00+02:00"],
    ),
    (
        "0 2 * * *",
        "Europe/Madrid",
        "2024-03-30T03:00:00",
        ["2024-03-31T03:00:00+02:00", "2024-04-01T02:00:00+02:00"],
    ),
    (
        "*/20 * * * *",
        "Europe/Madrid",
        "2024-03-31T01:30:00",
        ["2024-03-31T01:40:00+01:00", "2024-03-31T03:00:00+02:00", "2024-03-31T03:20:00+02:00"],
    ),
    (
        "30 2 * * *",
        "America/New_York",
        "2024-03-09T03:00:00",
        ["2024-03-10T03:00:00-04:00", "2024-03-11T02:30:00-04:00"],
    ),
    (
        "0 * * * *",
        "America/New_York",
        "2024-03-10T00:30:00",
        ["2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00", "2024-03-10T04:00:00-04:00"],
    ),
    # fall back: a repeated wall time fires once, at its first occurrence
    (
        "30 2 * * *",
        "Europe/Madrid",
        "2024-10-26T03:00:00",
        ["2024-10-27T02:30:00+02:00", "2024-10-28T02:30:00+01:00"],
    ),
    (
        "0 * * * *",
        "Europe/Madrid",
        "2024-10-27T00:30:00",
        ["2024-10-27T01:00:00+02:00", "2024-10-27T02:00:00+02:00", "2024-10-27T03:00:00+01:00"],
    ),
    (
        "30 1 * * *",
        "America/New_York",
        "2024-11-02T02:00:00",
        ["2024-11-03T01:30:00-04:00", "2024-11-04T01:30:00-05:00"],
    ),
    (
        "0 * * * *",
        "America/New_York",
        "2024-11-03T00:30:00",
        ["2024-11-03T01:00:00-04:00", "2024-11-03T02:00:00-05:00", "2024-11-03T03:00:00-05:00"],
    ),
    # a 30-minute DST shift (Lord Howe Island): 02:00 is in the gap, fires at 02:30
    (
        "0 * * * *",
        "Australia/Lord_Howe",
        "2019-10-06T01:43:00",
        ["2019-10-06T02:30:00+11:00", "2019-10-06T03:00:00+11:00"],
    ),
    # a whole day skipped (Samoa, 2011-12-30): its fires collapse into one
    (
        "0 12 * * *",
        "Pacific/Apia",
        "2011-12-29T13:00:00",
        ["2011-12-31T00:00:00+14:00", "2011-12-31T12:00:00+14:00"],
    ),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), DST)
def test_dst_rule(expression: str, zone: str, after: str, expected: list[str]) -> None:
    trigger = CronTrigger(expression, zone)
    fires = chain(trigger, at(after, zone), len(expected))
    assert [local(f, zone) for f in fires] == expected


TRANSITION_DAYS = [
    ("Europe/Madrid", "2024-03-31"),
    ("Europe/Madrid", "2024-10-27"),
    ("America/New_York", "2024-03-10"),
    ("America/New_York", "2024-11-03"),
]


@pytest.mark.parametrize(("zone", "day"), TRANSITION_DAYS)
@pytest.mark.parametrize("expression", ["0 2 * * *", "30 2 * * *", "30 1 * * *", "59 1 * * *"])
def test_daily_expression_fires_exactly_once_on_transition_days(
    expression: str, zone: str, day: str
) -> None:
    trigger = CronTrigger(expression, zone)
    midnight = at(f"{day}T00:00:00", zone)
    next_midnight = at(f"{day}T00:00:00", zone) + 25 * 3600
    fires = fires_between(trigger, midnight, next_midnight, 10)
    on_that_day = [f for f in fires if local(f, zone).startswith(day)]
    assert len(on_that_day) == 1


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        ("Europe/Madrid", "2024-03-31", 1440 - 60),  # 02:00-02:59 collapse into 03:00
        ("Europe/Madrid", "2024-10-27", 1440),  # 25 real hours, each wall minute once
        ("America/New_York", "2024-03-10", 1440 - 60),
        ("America/New_York", "2024-11-03", 1440),
    ],
)
def test_every_minute_on_transition_days(zone: str, day: str, expected: int) -> None:
    trigger = CronTrigger("* * * * *", zone)
    start = at(f"{day}T00:00:00", zone) - 1
    fires = fires_between(trigger, start, start + 26 * 3600, 5000)
    walls = [from_epoch(f, ZoneInfo(zone)).replace(tzinfo=None) for f in fires]
    on_that_day = [w for w in walls if w.date().isoformat() == day]
    assert len(on_that_day) == expected
    assert walls == sorted(set(walls))  # no wall time twice, never backwards


# --- properties ----------------------------------------------------------------


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    return st.one_of(
        st.just("*"),
        value.map(str),
        st.tuples(value, value).map(lambda p: f"{min(p)}-{max(p)}"),
        st.integers(1, max(1, (high - low) // 2)).map(lambda n: f"*/{n}"),
        st.lists(value, min_size=2, max_size=3).map(lambda vs: ",".join(map(str, vs))),
    )


@st.composite
def cron_expressions(draw: st.DrawFn) -> str:
    weekday = draw(
        st.one_of(
            _field(0, 7),
            st.sampled_from(["MON-FRI", "SAT,SUN", "L5", "1#2", "0#1,0#3", "3#5"]),
        )
    )
    plain_weekday = "#" not in weekday and "L" not in weekday
    day = draw(st.one_of(_field(1, 31), st.just("L"))) if plain_weekday else "*"
    fields = [draw(_field(0, 59)), draw(_field(0, 23)), day, draw(_field(1, 12)), weekday]
    if draw(st.booleans()):
        fields.append(draw(_field(0, 59)))
    return " ".join(fields)


def accepted(expression: str, zone: str = "UTC") -> CronTrigger:
    try:
        return CronTrigger(expression, zone)
    except TaskValidationError:
        assume(False)
        raise


reference_times = st.datetimes(datetime(1990, 1, 1), datetime(2040, 1, 1))


@settings(max_examples=300, deadline=None)
@given(expression=cron_expressions(), start=reference_times)
def test_matches_croniter_wall_clock_in_utc(expression: str, start: datetime) -> None:
    trigger = accepted(expression)
    expected = croniter(expression, start)
    after = start.replace(tzinfo=UTC).timestamp()
    for _ in range(4):
        after = chain(trigger, after, 1)[0]
        assert from_epoch(after).replace(tzinfo=None) == expected.get_next(datetime)


@settings(max_examples=300, deadline=None)
@given(
    expression=cron_expressions(),
    zone=st.sampled_from(ZONES),
    after=st.floats(at("1990-01-01T00:00:00"), at("2037-01-01T00:00:00")),
)
def test_next_fire_is_strictly_after_and_a_real_first_occurrence(
    expression: str, zone: str, after: float
) -> None:
    trigger = accepted(expression, zone)
    fire = trigger.next_fire(after)
    assert fire is not None
    assert fire > after
    assert fire == math.floor(fire)
    moment = from_epoch(fire, ZoneInfo(zone))
    assert moment.timestamp() == fire  # UTC -> local -> UTC is the identity
    assert moment.fold == 0  # never the second pass of a repeated wall time
    # Every reference in [after, fire) gives the same answer: no fire was skipped.
    # (Near a whole second the float midpoint may round up to ``fire`` itself.)
    middle = (after + fire) / 2
    if middle < fire:
        assert trigger.next_fire(middle) == fire
    assert trigger.next_fire(fire - 0.5) == fire
    # The local wall time matches the expression, unless the fire is the end of a gap.
    wall = moment.replace(tzinfo=UTC).timestamp()  # the wall time read as UTC
    gap_end = from_epoch(fire - 1, ZoneInfo(zone)).utcoffset() != moment.utcoffset()
    assert gap_end or CronTrigger(expression).next_fire(wall - 1) == wall


@settings(max_examples=60, deadline=None)
@given(
    expression=st.sampled_from(["* * * * *", "0 * * * *", "*/7 * * * *", "15,45 * * * *"]),
    case=st.sampled_from(TRANSITION_DAYS),
    shift_s=st.integers(-6 * 3600, 6 * 3600),
)
def test_no_duplicate_wall_times_across_transitions(
    expression: str, case: tuple[str, str], shift_s: int
) -> None:
    zone, day = case
    trigger = CronTrigger(expression, zone)
    start = at(f"{day}T00:00:00", zone) + shift_s
    fires = fires_between(trigger, start, start + 30 * 3600, 5000)
    walls = [from_epoch(f, ZoneInfo(zone)).replace(tzinfo=None) for f in fires]
    assert len(walls) == len(set(walls))
    assert fires == sorted(set(fires))


@settings(max_examples=150, deadline=None)
@given(
    expression=cron_expressions(),
    zone=st.sampled_from(ZONES),
    start=st.floats(at("2000-01-01T00:00:00"), at("2030-01-01T00:00:00")),
    span_s=st.floats(0, 3 * 86400),
    limit=st.integers(0, 300),
)
def test_fires_between_equals_chained_next_fire(
    expression: str, zone: str, start: float, span_s: float, limit: int
) -> None:
    fast = accepted(expression, zone)
    slow = CronTrigger(expression, zone)
    expected = Trigger.fires_between(slow, start, start + span_s, limit)
    assert fires_between(fast, start, start + span_s, limit) == expected


# --- start and end -------------------------------------------------------------


def test_cron_start_is_inclusive_and_end_is_inclusive() -> None:
    start, end = at("2024-01-01T09:00:00"), at("2024-01-03T09:00:00")
    trigger = CronTrigger("0 9 * * *", start=start, end=end)
    assert trigger.next_fire(0.0) == start
    assert fires_between(trigger, 0.0, at("2030-01-01T00:00:00"), 10) == [
        start,
        start + 86400,
        end,
    ]
    assert trigger.next_fire(end) is None
    assert trigger.next_fire(end + 10**6) is None


def test_cron_fractional_start_rounds_up_to_the_next_whole_second() -> None:
    trigger = CronTrigger("* * * * * *", start=100.25)
    assert trigger.next_fire(0.0) == 101.0


def test_cron_bounds_accept_aware_datetimes() -> None:
    start = datetime(2024, 1, 1, 9, tzinfo=ZoneInfo("Europe/Madrid"))
    trigger = CronTrigger("0 9 * * *", "Europe/Madrid", start=start)
    assert trigger.start == start.timestamp()
    assert trigger.next_fire(0.0) == start.timestamp()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"start": datetime(2024, 1, 1)}, "start"),
        ({"end": float("nan")}, "end"),
        ({"start": True}, "start"),
        ({"start": "2024-01-01"}, "start"),
        ({"start": 200.0, "end": 100.0}, "end"),
    ],
)
def test_cron_bad_bounds_are_refused(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(TaskValidationError) as caught:
        CronTrigger("0 9 * * *", **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_reference_time_must_be_finite() -> None:
    with pytest.raises(TaskValidationError):
        CronTrigger("* * * * *").next_fire(math.inf)


def test_far_future_has_no_fire() -> None:
    assert CronTrigger("* * * * *").next_fire(at("9999-06-01T00:00:00")) is None
    assert CronTrigger("* * * * *").next_fire(1e300) is None


# --- interval and date -----------------------------------------------------------

INTERVALS = [
    # seconds, start, after, next fire: fires at start + k * seconds, k >= 0
    (10.0, 100.0, 50.0, 100.0),
    (10.0, 100.0, 99.999, 100.0),
    (10.0, 100.0, 100.0, 110.0),
    (10.0, 100.0, 105.0, 110.0),
    (10.0, 100.0, 1e9 + 0.5, 1e9 + 10.0),
    (3600.0, None, at("2024-01-01T10:20:00"), at("2024-01-01T11:00:00")),
    (3600.0, None, at("2024-01-01T10:00:00"), at("2024-01-01T11:00:00")),
    (0.1, 0.0, 0.35, 0.4),
    (0.001, 1.7e9, 1.7e9 + 5.0005, 1.7e9 + 5.001),
]


@pytest.mark.parametrize(("seconds", "start", "after", "expected"), INTERVALS)
def test_interval_next_fire(
    seconds: float, start: float | None, after: float, expected: float
) -> None:
    fire = IntervalTrigger(seconds, start=start).next_fire(after)
    assert fire == pytest.approx(expected, abs=1e-6)
    assert fire is not None
    assert fire > after


def test_interval_end_is_inclusive() -> None:
    trigger = IntervalTrigger(10, start=0, end=30)
    assert fires_between(trigger, -1, 100, 10) == [0.0, 10.0, 20.0, 30.0]
    assert trigger.next_fire(30) is None


def test_interval_ignores_dst() -> None:
    zone = "Europe/Madrid"
    trigger = IntervalTrigger(3600, start=at("2024-10-27T00:00:00", zone))
    fires = fires_between(
        trigger, at("2024-10-27T00:30:00", zone), at("2024-10-27T04:00:00", zone), 10
    )
    assert [local(f, zone)[11:] for f in fires] == [
        "01:00:00+02:00",
        "02:00:00+02:00",
        "02:00:00+01:00",
        "03:00:00+01:00",
        "04:00:00+01:00",
    ]


@pytest.mark.parametrize("seconds", [0, -1, 0.0005, math.nan, math.inf, True, "5"])
def test_interval_must_be_at_least_a_millisecond(seconds: object) -> None:
    with pytest.raises(TaskValidationError) as caught:
        IntervalTrigger(seconds)  # type: ignore[arg-type]
    assert caught.value.field == "interval"


@settings(max_examples=300)
@given(
    seconds=st.floats(0.001, 1e6),
    start=st.none() | st.floats(-1e9, 2e9),
    after=st.floats(-2e9, 4e9),
    span_s=st.floats(0, 1e6),
    limit=st.integers(0, 50),
)
def test_interval_properties(
    seconds: float, start: float | None, after: float, span_s: float, limit: int
) -> None:
    trigger = IntervalTrigger(seconds, start=start)
    fire = trigger.next_fire(after)
    assert fire is not None
    assert fire > after
    # no grid point was skipped (up to the rounding of fire - seconds)
    previous = fire - seconds
    slack = 4 * math.ulp(max(abs(fire), abs(start or 0.0), seconds))
    assert previous <= after + slack or (start is not None and fire == start)
    chained = Trigger.fires_between(trigger, after, after + span_s, limit)
    assert fires_between(trigger, after, after + span_s, limit) == chained


def test_date_trigger_fires_once() -> None:
    trigger = DateTrigger(datetime(2024, 5, 1, 12, tzinfo=UTC))
    moment = at("2024-05-01T12:00:00")
    assert trigger.at == moment
    assert trigger.next_fire(moment - 1) == moment
    assert trigger.next_fire(moment) is None
    assert fires_between(trigger, 0, 2e9, 10) == [moment]


def test_date_trigger_refuses_naive_datetimes() -> None:
    with pytest.raises(TaskValidationError, match="naive"):
        DateTrigger(datetime(2024, 5, 1, 12))


# --- fires_between -------------------------------------------------------------


def test_fires_between_is_half_open_and_limited() -> None:
    trigger = IntervalTrigger(10, start=0)
    assert fires_between(trigger, 0, 30, 10) == [10.0, 20.0, 30.0]
    assert fires_between(trigger, 0, 30, 2) == [10.0, 20.0]
    assert fires_between(trigger, 0, 30, 0) == []
    assert fires_between(trigger, 30, 0, 10) == []
    hourly = CronTrigger("0 * * * *")
    day = at("2024-01-01T00:00:00")
    assert len(fires_between(hourly, day, day + 86400, 100)) == 24
    assert fires_between(hourly, day, day + 86400, 3) == [day + 3600, day + 7200, day + 10800]


@pytest.mark.parametrize("limit", [-1, True, 1.5])
def test_fires_between_limit_must_be_a_count(limit: object) -> None:
    with pytest.raises(TaskValidationError):
        fires_between(IntervalTrigger(1), 0, 1, limit)  # type: ignore[arg-type]


# --- persistence ---------------------------------------------------------------

TRIGGERS: list[Trigger] = [
    CronTrigger("0 9 * * MON-FRI", "Europe/Madrid"),
    CronTrigger("@daily", "America/New_York", start=1.7e9, end=1.8e9),
    CronTrigger("*/10 * * * * 30"),
    IntervalTrigger(90.5),
    IntervalTrigger(3600, start=1.7e9, end=1.71e9),
    DateTrigger(1.75e9),
]


@pytest.mark.parametrize("trigger", TRIGGERS, ids=repr)
def test_json_round_trip(trigger: Trigger) -> None:
    data = trigger.to_dict()
    assert data["kind"] == trigger.kind
    assert data["version"] == TRIGGER_FORMAT_VERSION
    text = json.dumps(data, allow_nan=False)
    restored = trigger_from_dict(json.loads(text))
    assert restored == trigger
    assert hash(restored) == hash(trigger)
    assert type(restored) is type(trigger)
    window = (1.7e9 + 12345.5, 1.76e9)
    assert fires_between(restored, *window, 3) == fires_between(trigger, *window, 3)
    assert fires_between(trigger, *window, 3)


def test_expression_whitespace_is_normalised() -> None:
    assert CronTrigger("0  9 *\t* *") == CronTrigger("0 9 * * *")
    assert CronTrigger("0 9 * * *") != CronTrigger("0 9 * * *", "Europe/Madrid")
    assert repr(CronTrigger("0 9 * * *")).startswith("CronTrigger(expression='0 9 * * *'")


BAD_RECORDS = [
    ([], "mapping"),
    ({"kind": "cron"}, "version"),
    ({"kind": "pickle", "version": 1}, "unknown kind"),
    ({"kind": ["cron"], "version": 1}, "unknown kind"),
    ({"kind": "date", "version": 2, "at": 1.0}, "version"),
    ({"kind": "date", "version": True, "at": 1.0}, "version"),
    ({"kind": "date", "version": 1}, "need exactly"),
    ({"kind": "date", "version": 1, "at": 1.0, "extra": 1}, "need exactly"),
    ({"kind": "date", "version": 1, "at": "soon"}, "must be a number"),
    ({"kind": "interval", "version": 1, "seconds": 5, "start": "0", "end": None}, "number"),
    (
        {
            "kind": "cron",
            "version": 1,
            "expression": 5,
            "timezone": "UTC",
            "start": None,
            "end": None,
        },
        "must be a string",
    ),
]


@pytest.mark.parametrize(("data", "reason"), BAD_RECORDS)
def test_bad_records_are_refused(data: object, reason: str) -> None:
    with pytest.raises(TaskValidationError, match=reason):
        trigger_from_dict(data)  # type: ignore[arg-type]


def test_bad_values_in_a_record_are_refused_by_the_trigger() -> None:
    record = CronTrigger("0 9 * * *").to_dict() | {"expression": "0 0 30 2 *"}
    with pytest.raises(TaskValidationError, match="never fire"):
        trigger_from_dict(record)


# --- helpers -------------------------------------------------------------------


def test_epoch_helpers() -> None:
    moment = datetime(2024, 3, 31, 3, tzinfo=ZoneInfo("Europe/Madrid"))
    assert to_epoch(moment) == at("2024-03-31T01:00:00")
    assert from_epoch(to_epoch(moment)) == moment
    assert from_epoch(0.0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert from_epoch(0.0, ZoneInfo("Asia/Kolkata")).utcoffset() == timedelta(hours=5, minutes=30)
    with pytest.raises(TaskValidationError, match="naive"):
        to_epoch(datetime(2024, 1, 1))


def test_a_reference_just_before_a_midnight_gap_fires_at_the_gap_end() -> None:
    # Santiago springs forward at local midnight: 00:00:01 does not exist on
    # 2032-09-05 and fires at the gap's end, 01:00:00, even when asked from the
    # half second before the gap (found by the property test above).
    trigger = CronTrigger("* * * * 0 1", "America/Santiago")
    gap_end = datetime(2032, 9, 5, 1, 0, tzinfo=ZoneInfo("America/Santiago")).timestamp()
    assert trigger.next_fire(gap_end - 0.5) == gap_end
    assert trigger.next_fire(gap_end) == gap_end + 1
