from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asched.core.windows import HOUR_S, OutcomeWindow, WindowTotals

T0 = 1_700_000_000.0


def test_empty_window() -> None:
    totals = OutcomeWindow().totals(T0, HOUR_S)
    assert totals == WindowTotals(0, 0, 0.0)
    assert totals.finished == 0
    assert totals.success_rate is None


def test_totals_and_rate() -> None:
    window = OutcomeWindow()
    window.record(T0, True, 1.5)
    window.record(T0 + 0.9, True, 0.5)
    window.record(T0 + 10, False, 2.0)
    totals = window.totals(T0 + 10, 60)
    assert totals == WindowTotals(2, 1, 4.0)
    assert totals.finished == 3
    assert totals.success_rate == pytest.approx(2 / 3)


def test_window_covers_the_last_n_seconds_including_now() -> None:
    window = OutcomeWindow(span_s=100)
    for second in range(50):
        window.record(T0 + second + 0.25, second % 2 == 0, 1.0)
    now = T0 + 49.5
    assert window.totals(now, 1) == WindowTotals(0, 1, 1.0)  # second 49 only
    assert window.totals(now, 2) == WindowTotals(1, 1, 2.0)  # seconds 48-49
    assert window.totals(now, 10).finished == 10
    assert window.totals(now, 50).finished == 50
    assert window.totals(now, 0).finished == 0
    # From a later now, the oldest seconds fall out.
    assert window.totals(T0 + 59, 10).finished == 0
    assert window.totals(T0 + 59, 11).finished == 1


def test_records_after_now_are_not_counted() -> None:
    window = OutcomeWindow(span_s=60)
    window.record(T0 + 5, True, 1.0)
    assert window.totals(T0 + 4.999, 60).finished == 0
    assert window.totals(T0 + 5, 60).finished == 1


def test_last_s_is_capped_at_the_span() -> None:
    window = OutcomeWindow(span_s=10)
    for second in range(10):
        window.record(T0 + second, True, 0.0)
    assert window.totals(T0 + 9, 10).finished == 10
    assert window.totals(T0 + 9, 1000).finished == 10


def test_a_bucket_is_reset_when_reused_after_wrap_around() -> None:
    window = OutcomeWindow(span_s=10)
    window.record(T0 + 3, True, 5.0)
    window.record(T0 + 3.5, False, 1.0)
    window.record(T0 + 13, True, 0.25)  # same slot, ten seconds later
    assert window.totals(T0 + 13, 10) == WindowTotals(1, 0, 0.25)
    assert window.totals(T0 + 13, 1000) == WindowTotals(1, 0, 0.25)
    # A whole lap later, nothing recorded since is visible either.
    assert window.totals(T0 + 30, 10) == WindowTotals(0, 0, 0.0)


def test_stale_buckets_are_ignored_without_being_overwritten() -> None:
    window = OutcomeWindow(span_s=10)
    window.record(T0 + 1, True, 1.0)
    window.record(T0 + 25, False, 1.0)
    assert window.totals(T0 + 25, 10) == WindowTotals(0, 1, 1.0)


@given(
    events=st.lists(
        st.tuples(
            st.floats(0, 20, allow_nan=False), st.booleans(), st.sampled_from([0.0, 0.5, 2.0])
        ),
        max_size=40,
    ),
    span=st.integers(1, 12),
    last=st.integers(0, 15),
    lag=st.floats(0, 15),
)
def test_matches_a_list_of_events(
    events: list[tuple[float, bool, float]], span: int, last: int, lag: float
) -> None:
    window = OutcomeWindow(span_s=span)
    times = sorted(T0 + t for t, _, _ in events)
    ordered = [(at, ok, busy) for at, (_, ok, busy) in zip(times, events, strict=True)]
    for at, ok, busy in ordered:
        window.record(at, ok, busy)
    now = (times[-1] if times else T0) + lag
    newest = int(now)
    oldest = newest - min(last, span) + 1
    counted = [(ok, busy) for at, ok, busy in ordered if oldest <= int(at) <= newest]
    totals = window.totals(now, last)
    assert totals.succeeded == sum(ok for ok, _ in counted)
    assert totals.failed == sum(not ok for ok, _ in counted)
    assert totals.busy_s == pytest.approx(sum(busy for _, busy in counted))
