from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asched.core.misfire import (
    DEFAULT_MAX_CATCH_UP,
    DEFAULT_MISFIRE_GRACE_S,
    MisfirePlan,
    plan_misfires,
)
from asched.core.triggers import CronTrigger, DateTrigger, IntervalTrigger, Trigger
from asched.errors import TaskValidationError

H = 3600.0
HOURLY = IntervalTrigger(H, start=H)  # fires at 1 h, 2 h, 3 h, ... on a virtual clock


def test_defaults_are_generous() -> None:
    assert DEFAULT_MISFIRE_GRACE_S == 3600.0
    assert DEFAULT_MAX_CATCH_UP >= 10


PLANS = [
    # id, last fire, now, grace, coalesce, cap -> run now, late, coalesced, over cap, next
    ("exactly on time", 0.0, H, H, True, 100, (H,), 0, 0, 0, 2 * H),
    ("a little late", H, 2 * H + 5, H, True, 100, (2 * H,), 0, 0, 0, 3 * H),
    ("nothing due yet", H, H + 10, H, True, 100, (), 0, 0, 0, 2 * H),
    ("before the first fire", 0.0, 10.0, H, True, 100, (), 0, 0, 0, H),
    # down from just after 1 h to 5 h 10 min: fires at 2, 3, 4, 5 h are due
    ("grace drops the old", H, 5 * H + 600, H, True, 100, (5 * H,), 3, 0, 0, 6 * H),
    ("unlimited grace coalesces", H, 5 * H + 600, None, True, 100, (5 * H,), 0, 3, 0, 6 * H),
    (
        "catch up on everything",
        H,
        5 * H + 600,
        None,
        False,
        100,
        (2 * H, 3 * H, 4 * H, 5 * H),
        0,
        0,
        0,
        6 * H,
    ),
    ("catch up capped", H, 5 * H + 600, None, False, 2, (4 * H, 5 * H), 0, 0, 2, 6 * H),
    ("catch up within grace", H, 5 * H + 600, 2 * H, False, 100, (4 * H, 5 * H), 2, 0, 0, 6 * H),
    # a fire exactly grace seconds old is still on time
    ("grace boundary", H, 3 * H, H, False, 100, (2 * H, 3 * H), 0, 0, 0, 4 * H),
    ("zero grace", H, 3 * H, 0.0, False, 100, (3 * H,), 1, 0, 0, 4 * H),
    # the clock went backwards: nothing runs twice
    ("clock went back", 3 * H, 2 * H, H, True, 100, (), 0, 0, 0, 4 * H),
]


@pytest.mark.parametrize(
    (
        "last",
        "now",
        "grace",
        "coalesce",
        "cap",
        "run_now",
        "late",
        "coalesced",
        "over_cap",
        "next_fire",
    ),
    [p[1:] for p in PLANS],
    ids=[p[0] for p in PLANS],
)
def test_plan(
    last: float,
    now: float,
    grace: float | None,
    coalesce: bool,
    cap: int,
    run_now: tuple[float, ...],
    late: int,
    coalesced: int,
    over_cap: int,
    next_fire: float,
) -> None:
    plan = plan_misfires(
        HOURLY,
        last_fire_epoch=last,
        now_epoch=now,
        grace_s=grace,
        coalesce=coalesce,
        max_catch_up=cap,
    )
    assert plan == MisfirePlan(run_now, late, coalesced, over_cap, next_fire, counts_exact=True)
    assert plan.skipped == late + coalesced + over_cap


def test_one_off_trigger_missed_beyond_grace() -> None:
    plan = plan_misfires(DateTrigger(100.0), last_fire_epoch=0.0, now_epoch=100.0 + 2 * H)
    assert plan == MisfirePlan((), 1, 0, 0, None)


def test_one_off_trigger_run_late_within_grace_then_exhausted() -> None:
    plan = plan_misfires(DateTrigger(100.0), last_fire_epoch=0.0, now_epoch=160.0)
    assert plan == MisfirePlan((100.0,), 0, 0, 0, None)
    after = plan_misfires(DateTrigger(100.0), last_fire_epoch=100.0, now_epoch=170.0)
    assert after == MisfirePlan((), 0, 0, 0, None)


def test_cron_misfire_across_fall_back() -> None:
    madrid_hourly = CronTrigger("0 * * * *", "Europe/Madrid")
    first = 1729987200.0  # 2024-10-27 02:00 CEST, the first 02:00
    plan = plan_misfires(
        madrid_hourly,
        last_fire_epoch=first - 1,
        now_epoch=first + 2 * H,
        grace_s=3 * H,
        coalesce=False,
    )
    # the repeated 02:00 CET does not fire again; 03:00 CET is two real hours later
    assert plan.run_now == (first, first + 2 * H)
    assert plan.next_fire == first + 3 * H


# --- bounded work --------------------------------------------------------------


def test_too_many_on_time_fires_still_runs_the_newest() -> None:
    every_second = IntervalTrigger(1.0, start=1.0)
    plan = plan_misfires(
        every_second, last_fire_epoch=0.0, now_epoch=1e6, grace_s=None, max_scan=100
    )
    assert plan.run_now == (1e6,)
    assert plan.next_fire == 1e6 + 1
    assert not plan.counts_exact
    assert 100 <= plan.skipped_coalesced < 1e6


def test_too_many_fires_catch_up_keeps_the_newest_in_order() -> None:
    every_second = IntervalTrigger(1.0, start=1.0)
    plan = plan_misfires(
        every_second,
        last_fire_epoch=0.0,
        now_epoch=1e6 + 0.5,
        grace_s=None,
        coalesce=False,
        max_catch_up=5,
        max_scan=100,
    )
    assert plan.run_now == (999_996.0, 999_997.0, 999_998.0, 999_999.0, 1e6)
    assert not plan.counts_exact


def test_too_many_late_fires_are_counted_up_to_the_budget() -> None:
    every_second = IntervalTrigger(1.0, start=1.0)
    plan = plan_misfires(every_second, last_fire_epoch=0.0, now_epoch=1e6, grace_s=H, max_scan=5000)
    assert plan.run_now == (1e6,)
    assert plan.skipped_late == 5000
    assert plan.skipped_coalesced == 3600  # fires from now - 1 h to now, minus the one run
    assert not plan.counts_exact


def test_a_week_of_per_second_cron_is_planned_quickly() -> None:
    every_second = CronTrigger("* * * * * *")
    now = 1.7e9 + 7 * 86400 + 0.5
    started = time.perf_counter()
    plan = plan_misfires(every_second, last_fire_epoch=1.7e9, now_epoch=now, grace_s=None)
    assert time.perf_counter() - started < 5.0  # generous: it takes a few milliseconds
    assert plan.run_now == (now - 0.5,)
    assert plan.next_fire == now + 0.5


# --- validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"grace_s": -1.0}, "grace_s"),
        ({"grace_s": float("nan")}, "grace_s"),
        ({"max_catch_up": 0}, "max_catch_up"),
        ({"max_catch_up": True}, "max_catch_up"),
        ({"max_scan": 0}, "max_scan"),
        ({"now_epoch": float("inf")}, "now_epoch"),
        ({"last_fire_epoch": "yesterday"}, "last_fire_epoch"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"last_fire_epoch": 0.0, "now_epoch": 10.0} | kwargs
    with pytest.raises(TaskValidationError) as caught:
        plan_misfires(HOURLY, **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field


# --- against a brute-force model ---------------------------------------------------


def model(
    trigger: Trigger,
    last: float,
    now: float,
    grace: float | None,
    coalesce: bool,
    cap: int,
) -> MisfirePlan:
    due = trigger.fires_between(last, now, 10**6) if now > last else []
    late = [f for f in due if grace is not None and f < now - grace]
    on_time = [f for f in due if f not in late]
    run = on_time[-(1 if coalesce else cap) :]
    dropped = len(on_time) - len(run)
    return MisfirePlan(
        tuple(run),
        len(late),
        dropped if coalesce else 0,
        0 if coalesce else dropped,
        trigger.next_fire(max(now, last)),
    )


@settings(max_examples=300)
@given(
    seconds=st.floats(1.0, 1000.0),
    start=st.floats(0.0, 1e4),
    last=st.floats(-1e4, 1e5),
    periods=st.floats(-2.0, 150.0),
    grace=st.none() | st.floats(0.0, 1e5),
    coalesce=st.booleans(),
    cap=st.integers(1, 20),
    max_scan=st.integers(1, 30),
)
def test_matches_the_model(
    seconds: float,
    start: float,
    last: float,
    periods: float,
    grace: float | None,
    coalesce: bool,
    cap: int,
    max_scan: int,
) -> None:
    now = last + periods * seconds
    trigger = IntervalTrigger(seconds, start=start)
    expected = model(trigger, last, now, grace, coalesce, cap)

    exact = plan_misfires(
        trigger,
        last_fire_epoch=last,
        now_epoch=now,
        grace_s=grace,
        coalesce=coalesce,
        max_catch_up=cap,
        max_scan=10**6,
    )
    assert exact == expected

    bounded = plan_misfires(
        trigger,
        last_fire_epoch=last,
        now_epoch=now,
        grace_s=grace,
        coalesce=coalesce,
        max_catch_up=cap,
        max_scan=max_scan,
    )
    assert bounded.run_now == expected.run_now
    assert bounded.next_fire == expected.next_fire
    if bounded.counts_exact:
        assert bounded == expected
    else:
        assert bounded.skipped_late <= expected.skipped_late
        assert bounded.skipped_coalesced <= expected.skipped_coalesced
        assert bounded.skipped_over_cap <= expected.skipped_over_cap
