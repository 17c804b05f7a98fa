"""The pure start rules every store applies: slots, GCRA budgets, shared breakers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from asched.core.breaker import BreakerSettings, BreakerState
from asched.core.claims import (
    BreakerNeed,
    BreakerRecord,
    ClaimNeed,
    RateNeed,
    breaker_admit,
    breaker_outcome,
    plan_claims,
)
from asched.core.ratelimit import RateLimit, RateLimiter

_slot_names = st.sampled_from(["key:a", "key:b", "type:t"])
_needs = st.lists(
    st.lists(st.tuples(_slot_names, st.integers(1, 3)), max_size=2, unique_by=lambda s: s[0]),
    max_size=12,
)


@given(_needs, st.dictionaries(_slot_names, st.integers(0, 3)))
def test_a_plan_grants_exactly_while_every_slot_has_room(
    wanted: list[list[tuple[str, int]]], held: dict[str, int]
) -> None:
    """Best first, each task is granted iff each of its slots has room at its turn
    (the limit a claim passes is the one it is checked against)."""
    ids = [f"t{i}" for i in range(len(wanted))]
    needs = {i: ClaimNeed(tuple(slots)) for i, slots in zip(ids, wanted, strict=True)}
    plan = plan_claims(ids, needs, held, {}, {}, 0.0)
    counts = dict(held)
    expected_granted = []
    for task_id in ids:
        slots = needs[task_id].slots
        if all(counts.get(name, 0) < limit for name, limit in slots):
            expected_granted.append(task_id)
            for name, _ in slots:
                counts[name] = counts.get(name, 0) + 1
        else:
            hold = plan.holds[task_id]
            assert hold.kind == "slot" and hold.wake_at_s is None
            assert counts.get(hold.name, 0) >= dict(slots)[hold.name]
    assert plan.granted == expected_granted
    assert sorted(plan.granted + list(plan.holds)) == sorted(ids)


@given(st.lists(st.floats(0, 100), min_size=1, max_size=30), st.integers(0, 2))
def test_a_shared_budget_admits_what_one_limiter_would(times: list[float], burst: int) -> None:
    rate = RateLimit(3, 10.0, burst=burst)
    need = ClaimNeed(rate=RateNeed("k", rate.interval_s, burst * rate.interval_s))
    local: RateLimiter[str] = RateLimiter(rate)
    tats: dict[str, float] = {}
    for now in sorted(times):
        plan = plan_claims(["t"], {"t": need}, {}, tats, {}, now)
        allowed = local.try_acquire("k", now) == 0.0
        assert (plan.granted == ["t"]) is allowed
        if not allowed:
            assert plan.holds["t"].wake_at_s is not None and plan.holds["t"].wake_at_s > now
        tats.update(plan.tats)


def test_tasks_without_needs_are_granted_beside_held_ones() -> None:
    needs = {"a": ClaimNeed((("key:a", 1),)), "b": ClaimNeed((("key:a", 1),))}
    plan = plan_claims(["a", "b", "c"], needs, {}, {}, {}, 0.0)
    assert (plan.granted, list(plan.holds), plan.taken) == (["a", "c"], ["b"], {"key:a": 1})


SETTINGS = BreakerSettings(failure_threshold=2, recovery_s=10.0, half_open_max_calls=2)


def test_a_breaker_opens_half_opens_and_closes_by_its_settings() -> None:
    record = BreakerRecord("api")
    assert breaker_outcome(record, SETTINGS, 0, "failed", 1.0) == []
    [opened] = breaker_outcome(record, SETTINGS, 0, "failed", 2.0)
    assert (opened.to_state, record.open_until_s, record.generation) == (
        BreakerState.OPEN,
        12.0,
        1,
    )
    hold, _ = breaker_admit(record, 2, 5.0)
    assert hold is not None and hold.wake_at_s == 12.0
    assert [breaker_admit(record, 2, 12.0)[0] for _ in range(2)] == [None, None]
    busy, _ = breaker_admit(record, 2, 12.0)
    assert busy is not None and busy.wake_at_s is None
    assert record.state == "half_open" and record.trials == 2
    breaker_outcome(record, SETTINGS, 2, "abandoned", 13.0)  # gives its trial back
    assert breaker_admit(record, 2, 13.0)[0] is None
    assert breaker_outcome(record, SETTINGS, 2, "succeeded", 14.0) == []
    [closed] = breaker_outcome(record, SETTINGS, 2, "succeeded", 15.0)
    assert closed.to_state is BreakerState.CLOSED and record.failures == 0


def test_a_failure_rate_breaker_counts_a_window() -> None:
    rate = BreakerSettings(failure_rate=0.5, min_calls=4, window_s=60.0)
    record = BreakerRecord("api")
    for now, outcome in [(0, "succeeded"), (1, "failed"), (2, "succeeded")]:
        assert breaker_outcome(record, rate, 0, outcome, float(now)) == []
    [opened] = breaker_outcome(record, rate, 0, "failed", 3.0)
    assert "2 of 4 calls failed" in opened.reason
    stale = BreakerRecord("old")
    for now in (0.0, 1.0, 2.0):
        breaker_outcome(stale, rate, 0, "failed", now)
    assert breaker_outcome(stale, rate, 0, "failed", 200.0) == []  # the window moved on


@given(st.lists(st.sampled_from(["admit", "succeeded", "failed", "abandoned"]), max_size=40))
def test_half_open_never_has_more_trials_out_than_allowed(steps: list[str]) -> None:
    record = BreakerRecord("api", state="half_open", generation=1)
    out: list[int] = []
    for step in steps:
        if step == "admit":
            hold, _ = breaker_admit(record, SETTINGS.half_open_max_calls, 0.0)
            if hold is None:
                out.append(record.generation)
        elif out:
            breaker_outcome(record, SETTINGS, out.pop(), step, 0.0)
        assert record.trials + record.successes <= SETTINGS.half_open_max_calls
        if record.state == "half_open":
            assert record.trials <= len(out)


def test_a_record_round_trips_through_json() -> None:
    record = BreakerRecord("api", "open", 3, 12.5, 2, 0, 0, 2.5, "why", [[1.0, 2.0, 1.0]])
    assert BreakerRecord.from_json(record.to_json()) == record
    need = BreakerNeed("api", SETTINGS)
    assert ClaimNeed(breaker=need) and not ClaimNeed()
