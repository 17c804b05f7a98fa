from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asched.core.breaker import (
    MAX_PENDING_TRANSITIONS,
    BreakerSettings,
    BreakerState,
    BreakerTransition,
    CircuitBreakerCore,
)
from asched.errors import ConfigError

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def run(core: CircuitBreakerCore, script: str) -> list[tuple[BreakerState, BreakerState]]:
    """Drive ``core`` with a script of ``op@time`` words; return the transitions made.

    ``S``/``F``: admit a call and record a success/failure (the call must be admitted);
    ``s``/``f``: record a success/failure without admitting; ``a``: admit (must pass);
    ``x``: admit (must be refused); ``r``: release a slot.
    """
    for word in script.split():
        op, _, at = word.partition("@")
        now = float(at)
        if op in "SFa":
            assert core.allow(now), word
        if op == "x":
            assert not core.allow(now), word
        if op in "Ss":
            core.record_success(now)
        if op in "Ff":
            core.record_failure(now)
        if op == "r":
            core.release()
    return [(t.from_state, t.to_state) for t in core.drain_transitions()]


def count_mode(**kwargs: Any) -> CircuitBreakerCore:
    return CircuitBreakerCore(
        "svc", BreakerSettings.of(**{"failure_threshold": 3, "recovery_s": 10.0, **kwargs})
    )


def rate_mode(**kwargs: Any) -> CircuitBreakerCore:
    options = {"failure_rate": 0.5, "min_calls": 4, "window_s": 60.0, "recovery_s": 10.0}
    return CircuitBreakerCore("svc", BreakerSettings.of(**{**options, **kwargs}))


TRIP = [(CLOSED, OPEN)]
TRIP_AND_PROBE = [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


@pytest.mark.parametrize(
    ("core", "script", "end_state", "transitions"),
    [
        pytest.param(count_mode(), "F@0 F@1", CLOSED, [], id="below-threshold"),
        pytest.param(count_mode(), "F@0 F@1 F@2", OPEN, TRIP, id="threshold-trips"),
        pytest.param(count_mode(), "F@0 F@1 S@2 F@3 F@4", CLOSED, [], id="success-resets-count"),
        pytest.param(count_mode(), "F@0 F@1 F@2 x@11.9", OPEN, TRIP, id="open-refuses"),
        pytest.param(count_mode(), "F@0 F@1 F@2 a@12", HALF_OPEN, TRIP_AND_PROBE, id="probe"),
        pytest.param(
            count_mode(),
            "F@0 F@1 F@2 S@12",
            CLOSED,
            [*TRIP_AND_PROBE, (HALF_OPEN, CLOSED)],
            id="trial-success-closes",
        ),
        pytest.param(
            count_mode(),
            "F@0 F@1 F@2 F@12 x@21.9",
            OPEN,
            [*TRIP_AND_PROBE, (HALF_OPEN, OPEN)],
            id="trial-failure-reopens-for-a-new-recovery",
        ),
        pytest.param(
            count_mode(), "F@0 F@1 F@2 a@12 x@12 x@13", HALF_OPEN, TRIP_AND_PROBE, id="one-trial"
        ),
        pytest.param(
            count_mode(half_open_max_calls=3),
            "F@0 F@1 F@2 a@12 a@12 a@12 x@12 s@13 x@13 s@14",
            HALF_OPEN,
            TRIP_AND_PROBE,
            id="reported-trials-do-not-free-slots",
        ),
        pytest.param(
            count_mode(half_open_max_calls=3),
            "F@0 F@1 F@2 a@12 a@12 a@12 s@13 s@14 s@15",
            CLOSED,
            [*TRIP_AND_PROBE, (HALF_OPEN, CLOSED)],
            id="all-trials-succeed",
        ),
        pytest.param(
            count_mode(), "F@0 F@1 F@2 a@12 x@12 r@12 a@13", HALF_OPEN, TRIP_AND_PROBE, id="release"
        ),
        pytest.param(count_mode(), "F@0 F@1 F@2 f@5 s@6", OPEN, TRIP, id="open-ignores-outcomes"),
        pytest.param(
            count_mode(),
            "F@0 F@1 F@2 S@12 F@13 F@14",
            CLOSED,
            [*TRIP_AND_PROBE, (HALF_OPEN, CLOSED)],
            id="closing-resets-count",
        ),
        pytest.param(
            count_mode(recovery_s=0.0), "F@0 F@1 F@2 a@2", HALF_OPEN, TRIP_AND_PROBE, id="no-wait"
        ),
        pytest.param(rate_mode(), "F@0 F@1 F@2", CLOSED, [], id="rate-below-min-calls"),
        pytest.param(rate_mode(), "S@0 S@1 F@2 F@3", OPEN, TRIP, id="rate-reaches-threshold"),
        pytest.param(rate_mode(), "S@0 S@1 S@2 F@3 F@4", CLOSED, [], id="rate-40pct"),
        pytest.param(rate_mode(), "S@0 S@1 S@2 F@3 F@4 F@5", OPEN, TRIP, id="rate-40pct-to-50pct"),
        pytest.param(rate_mode(), "S@0 S@1 S@2 S@3 F@4", CLOSED, [], id="rate-20pct"),
        pytest.param(
            rate_mode(), "F@0 F@1 F@2 S@61 S@62 S@63 F@64", CLOSED, [], id="old-failures-slide-out"
        ),
        pytest.param(
            rate_mode(), "F@0 F@1 F@2 S@30 F@59.5", OPEN, TRIP, id="window-still-holds-them"
        ),
        pytest.param(rate_mode(), "F@0 F@1 F@2 F@500", CLOSED, [], id="long-gap-clears-window"),
        pytest.param(
            rate_mode(failure_threshold=1), "F@0 F@1", CLOSED, [], id="rate-mode-ignores-threshold"
        ),
    ],
)
def test_transition_table(
    core: CircuitBreakerCore,
    script: str,
    end_state: BreakerState,
    transitions: list[tuple[BreakerState, BreakerState]],
) -> None:
    assert run(core, script) == transitions
    assert core.state(float(script.split()[-1].partition("@")[2])) is end_state


def test_transition_events_carry_name_time_and_reason() -> None:
    core = count_mode()
    run(core, "F@0 F@1")
    opened = core.record_failure(2.5)
    assert opened == BreakerTransition("svc", CLOSED, OPEN, 2.5, "3 consecutive failures")
    assert core.record_failure(3.0) is None
    # The lazy move to HALF_OPEN is dated when recovery ended, not when it was noticed.
    assert core.state(100.0) is HALF_OPEN
    assert core.drain_transitions() == [
        opened,
        BreakerTransition("svc", OPEN, HALF_OPEN, 12.5, "recovery time elapsed"),
    ]
    assert core.drain_transitions() == []


def test_rate_trip_reason_names_the_counts() -> None:
    core = rate_mode()
    run(core, "S@0 S@1 F@2")
    transition = core.record_failure(3.0)
    assert transition is not None
    assert transition.reason == "2 of 4 calls failed within 60s"


def test_pending_transitions_are_bounded() -> None:
    core = count_mode(failure_threshold=1, recovery_s=0.0)
    for n in range(MAX_PENDING_TRANSITIONS):
        assert core.allow(float(n))
        core.record_failure(float(n))
    pending = core.drain_transitions()
    assert len(pending) == MAX_PENDING_TRANSITIONS
    assert pending[-1].at == MAX_PENDING_TRANSITIONS - 1


def test_retry_after() -> None:
    core = count_mode(half_open_max_calls=1)
    assert core.retry_after(0.0) == 0.0
    run(core, "F@0 F@1 F@2")
    assert core.retry_after(4.0) == 8.0
    assert core.retry_after(12.0) == 0.0  # half-open, a trial slot is free
    assert core.allow(12.0)
    assert core.retry_after(12.0) is None  # depends on how the trial ends


def test_generation_changes_on_every_transition() -> None:
    core = count_mode()
    seen = [core.generation]
    run(core, "F@0 F@1 F@2")
    seen.append(core.generation)
    core.state(12.0)
    seen.append(core.generation)
    assert len(set(seen)) == 3


def test_stale_outcomes_are_ignored() -> None:
    core = count_mode()
    assert core.allow(0.0)
    straggler = core.generation
    run(core, "F@0 F@1 F@2")
    assert core.allow(12.0)
    trial = core.generation
    # The straggler admitted while CLOSED cannot close the half-open breaker...
    assert core.record_success(13.0, straggler) is None
    core.release(straggler)
    assert not core.allow(13.0)
    assert core.state(13.0) is HALF_OPEN
    # ...but the trial can.
    closed = core.record_success(14.0, trial)
    assert closed is not None and closed.to_state is CLOSED
    # A stale failure cannot trip the closed breaker either.
    for _ in range(10):
        assert core.record_failure(15.0, trial) is None
    assert core.state(15.0) is CLOSED


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": 2.0}, "failure_threshold"),
        ({"failure_rate": 0.0}, "failure_rate"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"failure_rate": True}, "failure_rate"),
        ({"window_s": 0.0}, "window_s"),
        ({"window_s": float("inf")}, "window_s"),
        ({"min_calls": 0}, "min_calls"),
        ({"recovery_s": -1.0}, "recovery_s"),
        ({"recovery_s": float("nan")}, "recovery_s"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
    ],
)
def test_invalid_settings_name_the_field(kwargs: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CircuitBreakerCore("svc", BreakerSettings.of(**kwargs))
    assert caught.value.field == field_name


# --- a naive model to check the core against ------------------------------------------

BUCKET_S = 1.0  # window_s=60 over 60 buckets


@dataclass
class ModelBreaker:
    """The specification, written the slow and obvious way."""

    threshold: int
    rate: float | None
    min_calls: int
    recovery_s: float
    trials: int
    state: BreakerState = CLOSED
    epoch: int = 0
    opened_at: float = 0.0
    streak: int = 0
    outcomes: list[tuple[int, bool]] = field(default_factory=list)
    trial_tickets: int = 0
    trial_wins: int = 0

    def move(self, to: BreakerState) -> None:
        self.state, self.epoch = to, self.epoch + 1
        self.trial_tickets = self.trial_wins = 0
        if to is CLOSED:
            self.streak, self.outcomes = 0, []

    def tick(self, now: float) -> None:
        if self.state is OPEN and now >= self.opened_at + self.recovery_s:
            self.move(HALF_OPEN)

    def allow(self, now: float) -> bool:
        self.tick(now)
        if self.state is HALF_OPEN and self.trial_tickets + self.trial_wins < self.trials:
            self.trial_tickets += 1
            return True
        return self.state is CLOSED

    def outcome(self, now: float, epoch: int, ok: bool) -> None:
        if epoch != self.epoch:
            return
        if self.state is HALF_OPEN:
            self.trial_tickets -= 1
            if not ok:
                self.opened_at = now
                self.move(OPEN)
                return
            self.trial_wins += 1
            if self.trial_wins == self.trials:
                self.move(CLOSED)
        elif self.state is CLOSED:
            if self.rate is None:
                self.streak = 0 if ok else self.streak + 1
                tripped = self.streak >= self.threshold
            else:
                self.outcomes.append((int(now // BUCKET_S), ok))
                recent = [o for b, o in self.outcomes if b > int(now // BUCKET_S) - 60]
                failures = recent.count(False)
                tripped = not ok and len(recent) >= self.min_calls
                tripped = tripped and failures >= self.rate * len(recent)
            if tripped:
                self.opened_at = now
                self.move(OPEN)

    def cancel(self, epoch: int) -> None:
        if epoch == self.epoch and self.state is HALF_OPEN:
            self.trial_tickets -= 1


operations = st.lists(
    st.one_of(
        st.tuples(st.just("start"), st.integers(0, 0)),
        st.tuples(st.sampled_from(["ok", "fail", "cancel"]), st.integers(0, 20)),
        st.tuples(st.just("wait"), st.integers(0, 40)),
    ),
    max_size=120,
)


@settings(max_examples=300)
@given(
    operations=operations,
    threshold=st.integers(1, 4),
    rate=st.sampled_from([None, 0.25, 0.5, 1.0]),
    min_calls=st.integers(1, 5),
    recovery_s=st.sampled_from([0.0, 5.0, 30.0]),
    trials=st.integers(1, 3),
)
def test_core_matches_the_model(
    operations: list[tuple[str, int]],
    threshold: int,
    rate: float | None,
    min_calls: int,
    recovery_s: float,
    trials: int,
) -> None:
    core = CircuitBreakerCore(
        "svc",
        BreakerSettings(
            failure_threshold=threshold,
            failure_rate=rate,
            min_calls=min_calls,
            recovery_s=recovery_s,
            half_open_max_calls=trials,
        ),
    )
    model = ModelBreaker(threshold, rate, min_calls, recovery_s, trials)
    now = 0.0
    in_flight: list[tuple[int, int]] = []  # (core generation, model epoch) per admitted call
    for op, arg in operations:
        if op == "wait":
            now += arg / 4
        elif op == "start":
            admitted = core.allow(now)
            assert admitted is model.allow(now)
            if admitted:
                in_flight.append((core.generation, model.epoch))
        elif in_flight:
            generation, epoch = in_flight.pop(arg % len(in_flight))
            if op == "cancel":
                core.release(generation)
                model.cancel(epoch)
            elif op == "ok":
                core.record_success(now, generation)
                model.outcome(now, epoch, ok=True)
            else:
                core.record_failure(now, generation)
                model.outcome(now, epoch, ok=False)
        model.tick(now)
        assert core.state(now) is model.state
