"""Numbers that used to overflow later: intervals, trigger instants, settings, backoff.

Each is refused where it enters, with a typed error naming the field, before
anything is stored; and every retry delay the core computes is capped.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asched import (
    ConfigError,
    Retry,
    RetryPolicy,
    Scheduler,
    SchedulerConfig,
    TaskLifecycle,
    TaskValidationError,
)
from asched.core.backoff import (
    cap_delay_s,
    check_backoff_factor,
    check_max_backoff_s,
    retry_delay_s,
)
from asched.core.bounds import (
    DEFAULT_MAX_BACKOFF_S,
    MAX_EPOCH_S,
    MAX_INTERVAL_S,
    MIN_EPOCH_S,
    check_seconds,
)
from asched.core.triggers import DateTrigger, IntervalTrigger, trigger_from_dict
from asched.testing import FakeClock

DAY_S = 86_400.0


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


BAD_INTERVALS: list[Any] = [
    1e300,
    timedelta.max,
    timedelta(days=367),
    MAX_INTERVAL_S + 0.5,
    10**400,
    math.nan,
    math.inf,
    -math.inf,
    0,
    0.0,
    -1,
    timedelta(0),
    timedelta(seconds=-5),
]


# --- intervals: the core trigger ------------------------------------------------------


@pytest.mark.parametrize("seconds", BAD_INTERVALS, ids=_short)
def test_interval_trigger_refuses_out_of_range_periods(seconds: Any) -> None:
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    with pytest.raises(TaskValidationError) as caught:
        IntervalTrigger(seconds)
    assert caught.value.field == "interval"


def test_interval_bounds_are_inclusive() -> None:
    assert IntervalTrigger(MAX_INTERVAL_S).seconds == 366 * DAY_S
    assert IntervalTrigger(0.001).seconds == 0.001


def test_a_stored_interval_out_of_range_is_refused_when_read() -> None:
    record = {"kind": "interval", "version": 1, "seconds": 1e300, "start": None, "end": None}
    with pytest.raises(TaskValidationError) as caught:
        trigger_from_dict(record)
    assert caught.value.field == "interval"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: IntervalTrigger(60, start=1e300), "start"),
        (lambda: IntervalTrigger(60, start=-1e300), "start"),
        (lambda: IntervalTrigger(60, start=MAX_EPOCH_S + 1), "start"),
        (lambda: DateTrigger(1e300), "at"),
        (lambda: DateTrigger(MIN_EPOCH_S - 1), "at"),
    ],
)
def test_trigger_instants_outside_the_calendar_are_refused(
    build: Callable[[], object], field: str
) -> None:
    with pytest.raises(TaskValidationError) as caught:
        build()
    assert caught.value.field == field


def test_an_end_far_away_is_accepted_and_never_passed() -> None:
    end = datetime.max.replace(tzinfo=UTC)
    trigger = IntervalTrigger(MAX_INTERVAL_S, start=MAX_EPOCH_S - 10, end=end)
    assert trigger.next_fire(0.0) == MAX_EPOCH_S - 10
    assert trigger.next_fire(MAX_EPOCH_S - 10) is None  # the next step is past year 9998


@pytest.mark.parametrize("after", [1e300, MAX_EPOCH_S, 2.0**70])
def test_references_past_the_calendar_have_no_fire(after: float) -> None:
    # A grid step is below float resolution out there: this used to loop for good.
    assert IntervalTrigger(7.0).next_fire(after) is None
    assert IntervalTrigger(7.0).fires_between(after, after * 2, 3) == []


def test_references_before_the_calendar_get_its_first_fire() -> None:
    fire = IntervalTrigger(7.0).next_fire(-1e300)
    assert fire is not None
    assert MIN_EPOCH_S < fire <= MIN_EPOCH_S + 7
    assert IntervalTrigger(7.0).fires_between(-1e300, MIN_EPOCH_S + 14, 3) == [fire, fire + 7]


@settings(max_examples=200)
@given(
    seconds=st.floats(0.001, MAX_INTERVAL_S),
    start=st.none() | st.floats(MIN_EPOCH_S, MAX_EPOCH_S),
    after=st.floats(-1e300, 1e300),
)
def test_interval_fires_stay_in_the_calendar(
    seconds: float, start: float | None, after: float
) -> None:
    fire = IntervalTrigger(seconds, start=start).next_fire(after)
    if fire is not None:
        assert fire > after
        assert MIN_EPOCH_S <= fire <= MAX_EPOCH_S
        datetime.fromtimestamp(fire, UTC)  # representable: no OverflowError downstream


# --- intervals: through the public API -------------------------------------------------


BAD_INTERVALS = [value for value in BAD_INTERVALS]


@pytest.mark.parametrize("interval", BAD_INTERVALS, ids=_short)
@pytest.mark.parametrize("schedule_id", [None, "sid"])
async def test_schedule_recurring_refuses_an_out_of_range_interval(
    make_scheduler: Callable[..., Scheduler], interval: Any, schedule_id: str | None
) -> None:
    s = make_scheduler()
    s.task("report")(_noop)
    async with s:
        with pytest.raises(TaskValidationError) as caught:
            await s.schedule_recurring("report", interval=interval, schedule_id=schedule_id)
        assert caught.value.field == "interval"
        assert await s.list_schedules() == []


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"interval": 60, "jitter": 1e300}, "jitter"),
        ({"interval": 60, "misfire_grace": 1e300}, "misfire_grace"),
        ({"cron": "@daily", "timezone": ""}, "timezone"),
    ],
)
async def test_schedule_options_out_of_range_are_refused(
    make_scheduler: Callable[..., Scheduler], options: dict[str, Any], field: str
) -> None:
    s = make_scheduler()
    s.task("report")(_noop)
    async with s:
        with pytest.raises(TaskValidationError) as caught:
            await s.schedule_recurring("report", **options)
        assert caught.value.field == field
        assert await s.list_schedules() == []


async def test_a_refused_interval_leaves_a_durable_store_readable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    clock = FakeClock(datetime(2027, 1, 4, tzinfo=UTC).timestamp())
    first = Scheduler(url, clock=clock)
    first.task("report")(_noop)
    async with first:
        for interval in (1e300, timedelta.max):
            with pytest.raises(TaskValidationError):
                await first.schedule_recurring("report", interval=interval)
        await first.schedule_recurring("report", interval=timedelta(days=366), schedule_id="y")
    again = Scheduler(url, clock=clock)
    again.task("report")(_noop)
    async with again:
        [info] = await again.list_schedules()
    assert info["id"] == "y"
    assert info["next_fire"] == datetime(2028, 1, 5, tzinfo=UTC)


# --- settings ----------------------------------------------------------------------------

BAD_SETTINGS = [
    ("lease_s", math.inf),
    ("lease_s", math.nan),
    ("lease_s", 1e-9),
    ("lease_s", 0.0),
    ("lease_s", 1e300),
    ("lease_s", 10**400),
    ("poll_interval_s", 1e-9),
    ("poll_interval_s", 0),
    ("poll_interval_s", math.inf),
    ("poll_interval_s", 3601.0),
    ("grace_period_s", math.inf),
    ("grace_period_s", 1e300),
    ("default_timeout_s", math.inf),
    ("default_timeout_s", 1e300),
    ("default_backoff_factor", 1e308),
    ("default_backoff_factor", math.inf),
    ("default_backoff_factor", 100.5),
    ("max_backoff_s", math.inf),
    ("max_backoff_s", -1.0),
    ("max_backoff_s", math.nan),
    ("max_backoff_s", 1e300),
    ("max_backoff_s", "1d"),
    ("timezone", ""),
    ("timezone", " "),
    ("timezone", "localtime"),
    ("timezone", "UTC "),
]


@pytest.mark.parametrize(("field", "value"), BAD_SETTINGS)
def test_a_setting_out_of_range_is_refused_naming_it(field: str, value: Any) -> None:
    for build in (lambda: SchedulerConfig(**{field: value}), lambda: Scheduler(**{field: value})):
        with pytest.raises(ConfigError) as caught:
            build()
        assert caught.value.field == field
        assert field in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "raw", "field"),
    [
        ("ASCHED_LEASE_S", "inf", "lease_s"),
        ("ASCHED_POLL_INTERVAL_S", "1e-9", "poll_interval_s"),
        ("ASCHED_MAX_BACKOFF_S", "nan", "max_backoff_s"),
        ("ASCHED_DEFAULT_BACKOFF_FACTOR", "1e308", "default_backoff_factor"),
    ],
)
def test_an_environment_setting_out_of_range_is_refused(
    variable: str, raw: str, field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        SchedulerConfig.from_env({variable: raw})
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lease_s", 0.05),
        ("lease_s", DAY_S),
        ("poll_interval_s", 0.001),
        ("poll_interval_s", 3600),
        ("grace_period_s", 0),
        ("grace_period_s", DAY_S),
        ("default_timeout_s", 366 * DAY_S),
        ("default_backoff_factor", 100),
        ("max_backoff_s", 0),
        ("max_backoff_s", 366 * DAY_S),
    ],
)
def test_range_ends_are_accepted(field: str, value: float) -> None:
    assert getattr(SchedulerConfig(**{field: value}), field) == value


def test_max_backoff_defaults_to_a_day() -> None:
    assert SchedulerConfig().max_backoff_s == DEFAULT_MAX_BACKOFF_S == DAY_S


# --- backoff: the core ----------------------------------------------------------------------


@pytest.mark.parametrize("factor", [1e308, math.inf, math.nan, 0.5, 100.5, 10**400, True, "2"])
def test_a_backoff_factor_out_of_range_is_refused(factor: Any) -> None:
    with pytest.raises(TaskValidationError) as caught:
        check_backoff_factor(factor)
    assert caught.value.field == "backoff_factor"
    with pytest.raises(TaskValidationError) as caught:
        RetryPolicy(backoff_factor=factor)
    assert caught.value.field == "backoff_factor"


def test_the_field_checks_can_raise_config_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        check_backoff_factor(1e308, field="default_backoff_factor", error=ConfigError)
    assert caught.value.field == "default_backoff_factor"
    with pytest.raises(ConfigError):
        check_max_backoff_s(math.inf, error=ConfigError)
    with pytest.raises(ConfigError, match=r"\(0, 5\]"):
        check_seconds(ConfigError, "x", 0, minimum=0, maximum=5, include_minimum=False)


@pytest.mark.parametrize(
    ("factor", "retry", "requested", "expected"),
    [
        (2.0, 1, None, 2.0),
        (2.0, 3, None, 8.0),
        (100.0, 10**9, None, DAY_S),  # would overflow a float
        (2, 10**6, None, DAY_S),  # an int factor would build a huge exact int
        (1e308, 2, None, DAY_S),  # factors the checks refuse are still capped
        (math.inf, 1, None, DAY_S),
        (2.0, 1, 30.0, 30.0),  # a handler's own delay wins
        (2.0, 1, 1e300, DAY_S),  # raise Retry(delay_s=1e300)
        (2.0, 1, math.inf, DAY_S),
        (2.0, 1, math.nan, DAY_S),
        (2.0, 1, -5.0, 0.0),
    ],
)
def test_every_retry_delay_is_capped(
    factor: float, retry: int, requested: float | None, expected: float
) -> None:
    assert retry_delay_s(factor, retry, requested_s=requested) == expected


def test_the_cap_is_configurable() -> None:
    assert retry_delay_s(2.0, 10, max_backoff_s=60.0) == 60.0
    assert retry_delay_s(2.0, 1, requested_s=1e300, max_backoff_s=0.0) == 0.0
    assert cap_delay_s(1e300, 3600.0) == 3600.0
    assert cap_delay_s(12.5) == 12.5


@settings(max_examples=300)
@given(
    factor=st.floats(1.0, 1e308),
    retry=st.integers(0, 10**12),
    requested=st.none() | st.floats(allow_nan=True, allow_infinity=True),
    cap=st.floats(0.0, 366 * DAY_S),
)
def test_no_retry_delay_leaves_zero_to_the_cap(
    factor: float, retry: int, requested: float | None, cap: float
) -> None:
    delay = retry_delay_s(factor, retry, requested_s=requested, max_backoff_s=cap)
    assert 0.0 <= delay <= cap


@settings(max_examples=200)
@given(
    factor=st.floats(1.0, 100.0),
    base=st.floats(0.0, 366 * DAY_S),
    max_delay=st.floats(0.0, 366 * DAY_S),
    retries=st.integers(0, 10**9),
    jitter=st.sampled_from([None, "full", "equal"]),
)
def test_a_policy_delay_stays_within_its_max_delay(
    factor: float, base: float, max_delay: float, retries: int, jitter: Any
) -> None:
    policy = RetryPolicy(backoff_factor=factor, base=base, max_delay=max_delay, jitter=jitter)
    assert 0.0 <= policy.delay_s(retries, random.Random(retries)) <= max_delay


# --- backoff: through the public API ----------------------------------------------------------


def test_a_scheduler_refuses_an_unbounded_default_backoff() -> None:
    with pytest.raises(ConfigError) as caught:
        Scheduler(default_backoff_factor=1e308)
    assert caught.value.field == "default_backoff_factor"


async def test_a_task_refuses_an_unbounded_backoff_factor(
    make_scheduler: Callable[..., Scheduler],
) -> None:
    s = make_scheduler()
    s.task("flaky")(_noop)
    async with s:
        with pytest.raises(TaskValidationError) as caught:
            await s.schedule_task("flaky", backoff_factor=1e308)
        assert caught.value.field == "backoff_factor"
        assert await s.list_tasks() == []


async def test_a_huge_requested_retry_delay_waits_at_most_the_cap(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler(max_backoff_s=60.0)
    attempts: list[float] = []

    @s.task("flaky")
    async def flaky() -> None:
        attempts.append(clock.now())
        raise Retry(delay_s=1e300)

    async with s:
        task_id = await s.schedule_task("flaky", max_retries=2)
        await clock.advance(200)
        task = await s.get_task(task_id)
    assert len(attempts) == 3
    assert [b - a for a, b in pairwise(attempts)] == [60.0, 60.0]
    assert task.lifecycle is TaskLifecycle.FAILED


async def _noop() -> None:
    return None
