from __future__ import annotations

import math
import random
from typing import TypeVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from asched.core.wheel import Timer, TimerWheel

MS = 0.001
LEVEL0_SPAN_MS = 256
HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY
EPOCH = 1_700_000_000.0

T = TypeVar("T")


def drive(wheel: TimerWheel[T], limit: int = 100_000) -> list[tuple[float, list[T]]]:
    """Advance only to next_deadline() until the wheel is empty."""
    steps: list[tuple[float, list[T]]] = []
    for _ in range(limit):
        deadline = wheel.next_deadline()
        if deadline is None:
            return steps
        steps.append((deadline, wheel.advance(deadline)))
    raise AssertionError("the wheel did not drain")


# -- deterministic -----------------------------------------------------------------


def test_empty_wheel() -> None:
    wheel: TimerWheel[str] = TimerWheel(5.0)
    assert len(wheel) == 0
    assert wheel.next_deadline() is None
    assert wheel.advance(1e9) == []


@pytest.mark.parametrize("start", [0.0, 12.3456, EPOCH])
@pytest.mark.parametrize(
    "offset",
    [
        0.0,
        0.0004,
        0.001,
        0.2559,
        0.256,
        0.2561,
        1.0,
        16.384,
        17 * 60.0,
        18.7 * HOUR,
        3 * DAY + 0.0005,
        2 * WEEK + 0.123456,
    ],
)
def test_never_returned_before_its_due_time(start: float, offset: float) -> None:
    wheel: TimerWheel[str] = TimerWheel(start)
    due = start + offset
    wheel.insert(due, "x")
    assert wheel.advance(due - 1e-6) == []
    assert len(wheel) == 1
    deadline = wheel.next_deadline()
    assert deadline is not None
    assert deadline <= due
    assert wheel.advance(due) == ["x"]
    assert len(wheel) == 0
    assert wheel.next_deadline() is None


def test_level0_deadline_is_exact_to_the_sub_millisecond() -> None:
    wheel: TimerWheel[str] = TimerWheel(100.0)
    wheel.insert(100.0507, "b")
    wheel.insert(100.0503, "a")
    assert wheel.next_deadline() == 100.0503
    assert wheel.advance(100.0505) == ["a"]
    assert wheel.next_deadline() == 100.0507
    assert wheel.advance(100.0507) == ["b"]


def test_same_due_fires_in_insertion_order() -> None:
    wheel: TimerWheel[int] = TimerWheel(0.0)
    for item in range(20):
        wheel.insert(5.0, item)
    wheel.insert(4.9999, -1)
    assert wheel.advance(5.0) == [-1, *range(20)]


def test_overdue_items_fire_on_the_next_advance() -> None:
    wheel: TimerWheel[str] = TimerWheel(10.0)
    wheel.insert(3.0, "late")
    wheel.insert(-2.0, "later")
    assert wheel.next_deadline() == -2.0
    assert wheel.advance(10.0) == ["later", "late"]


def test_overdue_insert_after_advance_fires_at_its_reported_deadline() -> None:
    wheel: TimerWheel[str] = TimerWheel(0.0)
    assert wheel.advance(10.0) == []
    wheel.insert(5.0, "overdue")
    wheel.insert(10.0002, "soon")
    assert wheel.next_deadline() == 5.0
    assert wheel.advance(5.0) == ["overdue"]
    assert wheel.next_deadline() == 10.0002
    assert wheel.advance(10.0002) == ["soon"]


def test_deadline_never_after_a_due_that_rounds_up_to_a_bucket_start() -> None:
    # 29.951999999999998 * 1000 rounds to 29952.0, a level-1 bucket start.
    due = math.nextafter(29.952, 0.0)
    wheel: TimerWheel[str] = TimerWheel(29.6)
    wheel.insert(due, "x")
    steps = drive(wheel)
    for deadline, _ in steps:
        assert deadline <= due
    assert steps[-1] == (due, ["x"])


def test_cancel() -> None:
    wheel: TimerWheel[str] = TimerWheel(0.0)
    keep = wheel.insert(0.2, "keep")
    drop = wheel.insert(0.1, "drop")
    far = wheel.insert(5 * DAY, "far")
    assert isinstance(drop, Timer)
    assert drop.active
    assert wheel.cancel(drop) is True
    assert not drop.active
    assert wheel.cancel(drop) is False
    assert wheel.cancel(far) is True
    assert len(wheel) == 1
    assert wheel.next_deadline() == 0.2
    assert wheel.advance(10 * DAY) == ["keep"]
    assert not keep.active
    assert wheel.cancel(keep) is False  # already fired
    assert len(wheel) == 0


def test_cancelling_the_only_item_empties_the_deadline() -> None:
    wheel: TimerWheel[str] = TimerWheel(0.0)
    wheel.cancel(wheel.insert(0.1, "x"))
    assert wheel.next_deadline() is None


def test_driving_by_next_deadline_drains_everything_in_order() -> None:
    rng = random.Random(1234)
    start = EPOCH + 0.5
    wheel: TimerWheel[int] = TimerWheel(start)
    dues: list[float] = []
    for item in range(3000):
        kind = rng.random()
        if kind < 0.3:
            offset = rng.uniform(-0.01, 0.3)
        elif kind < 0.5:
            offset = rng.randrange(0, 1000) * MS  # many same-ms collisions
        elif kind < 0.8:
            offset = rng.uniform(0, HOUR)
        else:
            offset = rng.uniform(0, 3 * WEEK)
        dues.append(start + offset)
        wheel.insert(start + offset, item)
    assert len(wheel) == 3000
    expected = sorted(range(3000), key=lambda i: (dues[i], i))
    fired: list[int] = []
    remaining = set(range(3000))
    while (deadline := wheel.next_deadline()) is not None:
        assert deadline <= min(dues[i] for i in remaining)
        batch = wheel.advance(deadline)
        for item in batch:
            assert dues[item] <= deadline
        fired += batch
        remaining.difference_update(batch)
        assert len(wheel) == len(remaining)
    assert fired == expected


def test_weeks_ahead_cascade_through_every_level() -> None:
    start = 1000.0
    wheel: TimerWheel[str] = TimerWheel(start)
    offsets = {"1w": WEEK, "2w": 2 * WEEK + 0.0004, "2w+": 2 * WEEK + 0.0009, "5w": 5 * WEEK}
    for name, offset in offsets.items():
        wheel.insert(start + offset, name)
    now = start
    seen: dict[str, float] = {}
    while now < start + 6 * WEEK:
        now += 1234.5  # not aligned to any bucket
        for name in wheel.advance(now):
            seen[name] = now
    assert list(seen) == ["1w", "2w", "2w+", "5w"]
    for name, offset in offsets.items():
        assert start + offset <= seen[name] < start + offset + 1234.5
    assert len(wheel) == 0


def test_far_item_fires_exactly_when_driven_by_deadlines() -> None:
    wheel: TimerWheel[str] = TimerWheel(0.0)
    due = 3 * WEEK + 0.1234567
    wheel.insert(due, "x")
    steps = drive(wheel)
    assert all(deadline <= due for deadline, _ in steps)
    assert steps[-1] == (due, ["x"])
    assert [batch for _, batch in steps[:-1]] == [[]] * (len(steps) - 1)


# -- state machine -------------------------------------------------------------------

offsets = st.one_of(
    st.floats(-2.0, 2.0),  # past and near future, sub-millisecond
    st.integers(-300, 600).map(lambda ms: ms * MS),  # whole milliseconds
    st.floats(0.0, 20 * 60.0),  # levels 1-3
    st.floats(0.0, 21 * DAY),  # top level
    st.integers(1, 30).map(lambda days: days * DAY),
)
steps_s = st.one_of(
    st.floats(0.0, 0.3),
    st.floats(0.0, 100.0),
    st.floats(0.0, 2 * DAY),
    st.sampled_from([MS, 0.256, 16.384, 1048.576, 67108.864]),
)


def tick_of(seconds: float) -> int:
    return math.floor(seconds * 1000.0)


class WheelMachine(RuleBasedStateMachine):
    """TimerWheel against a dict of live (due, seq) -> item."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.wheel: TimerWheel[int] = TimerWheel(0.0)
        self.live: dict[int, tuple[float, Timer[int]]] = {}
        self.cancelled: list[Timer[int]] = []
        self.seq = 0

    @initialize(start=st.sampled_from([0.0, 0.2559, 12.3456789, 67108.86, EPOCH + 0.9999]))
    def start(self, start: float) -> None:
        self.now = start
        self.wheel = TimerWheel(start)

    def _insert(self, due: float) -> None:
        item = self.seq
        self.seq += 1
        self.live[item] = (due, self.wheel.insert(due, item))

    @rule(offset=offsets)
    def insert(self, offset: float) -> None:
        self._insert(self.now + offset)

    @precondition(lambda self: bool(self.live))
    @rule(data=st.data(), delta=st.sampled_from([0.0, 0.0, 1e-5, -1e-5, 4e-4, 0.001, -0.001]))
    def insert_near_another(self, data: st.DataObject, delta: float) -> None:
        item = data.draw(st.sampled_from(sorted(self.live)))
        self._insert(self.live[item][0] + delta)

    @precondition(lambda self: bool(self.live))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        item = data.draw(st.sampled_from(sorted(self.live)))
        timer = self.live.pop(item)[1]
        assert self.wheel.cancel(timer) is True
        assert self.wheel.cancel(timer) is False
        self.cancelled.append(timer)

    def _advance(self, now: float) -> None:
        fired = self.wheel.advance(now)
        due = sorted((d, i) for i, (d, _) in self.live.items() if d <= now)
        assert fired == [i for _, i in due]
        for item in fired:
            del self.live[item]
        self.now = max(self.now, now)

    @rule(step=steps_s)
    def advance(self, step: float) -> None:
        self._advance(self.now + step)

    @rule()
    def advance_to_next_deadline(self) -> None:
        deadline = self.wheel.next_deadline()
        if deadline is None:
            assert not self.live
            return
        self._advance(deadline)

    @rule()
    def advance_to_just_before_the_earliest_due(self) -> None:
        if self.live:
            earliest = min(d for d, _ in self.live.values())
            if earliest - 1e-6 > self.now:
                self._advance(earliest - 1e-6)

    @invariant()
    def length_is_live_count(self) -> None:
        assert len(self.wheel) == len(self.live)
        for timer in self.cancelled:
            assert not timer.active

    @invariant()
    def deadline_never_late_and_exact_nearby(self) -> None:
        deadline = self.wheel.next_deadline()
        if not self.live:
            return
        earliest = min(d for d, _ in self.live.values())
        assert deadline is not None
        assert deadline <= earliest
        if earliest <= self.now:
            assert deadline == earliest
            return
        # Exact when the earliest due lies inside the current level-0 span
        # (margins keep float rounding at the span edges out of the check).
        block = tick_of(self.now) // LEVEL0_SPAN_MS
        block_start = block * LEVEL0_SPAN_MS * MS
        if (
            tick_of(earliest) // LEVEL0_SPAN_MS == block
            and earliest < block_start + 0.2559
            and self.now > block_start + 1e-6
        ):
            assert deadline == earliest


WheelMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
TestWheelMachine = WheelMachine.TestCase
