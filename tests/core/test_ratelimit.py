from __future__ import annotations

import bisect
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asched.core.ratelimit import RateLimit, RateLimiter
from asched.errors import ConfigError


def test_six_per_hour_per_channel() -> None:
    limiter: RateLimiter[str] = RateLimiter(RateLimit(6, 3600.0))
    assert limiter.try_acquire("c1", 0.0) == 0.0
    assert limiter.try_acquire("c1", 1.0) == 599.0
    assert limiter.try_acquire("c2", 1.0) == 0.0  # keys are independent
    assert limiter.try_acquire("c1", 600.0) == 0.0
    assert limiter.try_acquire("c1", 600.0) == 600.0


def test_burst_goes_back_to_back_then_one_per_interval() -> None:
    limiter: RateLimiter[None] = RateLimiter(RateLimit(100, 60.0, burst=20))
    assert [limiter.try_acquire(None, 0.0) for _ in range(21)] == [0.0] * 21
    assert limiter.try_acquire(None, 0.0) == pytest.approx(0.6)
    assert limiter.try_acquire(None, 0.6) == 0.0
    assert limiter.try_acquire(None, 0.6) == pytest.approx(0.6)


def test_a_refused_call_takes_nothing() -> None:
    limiter: RateLimiter[str] = RateLimiter(RateLimit(1, 10.0))
    limiter.try_acquire("k", 0.0)
    assert [limiter.try_acquire("k", 4.0) for _ in range(5)] == [6.0] * 5
    assert limiter.try_acquire("k", 10.0) == 0.0


def test_peek_reports_the_wait_without_taking() -> None:
    limiter: RateLimiter[str] = RateLimiter(RateLimit(2, 10.0))
    assert limiter.peek("k", 0.0) == 0.0
    assert limiter.peek("k", 0.0) == 0.0
    limiter.try_acquire("k", 0.0)
    assert limiter.peek("k", 1.0) == 4.0
    assert limiter.try_acquire("k", 1.0) == 4.0
    assert limiter.peek("k", 5.0) == 0.0


def test_reset_forgets_a_key() -> None:
    limiter: RateLimiter[str] = RateLimiter(RateLimit(1, 10.0))
    limiter.try_acquire("k", 0.0)
    limiter.reset("k")
    assert limiter.try_acquire("k", 0.0) == 0.0


def test_recovered_keys_are_forgotten() -> None:
    limiter: RateLimiter[int] = RateLimiter(RateLimit(1, 1.0))
    # A new key every 0.1 s, each limited for 1 s: about 10 are limited at any time.
    for key in range(10_000):
        assert limiter.try_acquire(key, key / 10) == 0.0
        assert len(limiter) <= 65


def test_keys_still_limited_are_kept() -> None:
    limiter: RateLimiter[int] = RateLimiter(RateLimit(1, 1000.0))
    for key in range(500):
        limiter.try_acquire(key, float(key))
    assert len(limiter) == 500
    assert limiter.try_acquire(0, 500.0) == 500.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limit": 0, "period_s": 1.0}, "limit"),
        ({"limit": 1.5, "period_s": 1.0}, "limit"),
        ({"limit": True, "period_s": 1.0}, "limit"),
        ({"limit": 1, "period_s": 0.0}, "period_s"),
        ({"limit": 1, "period_s": float("inf")}, "period_s"),
        ({"limit": 1, "period_s": "1"}, "period_s"),
        ({"limit": 1, "period_s": 1.0, "burst": -1}, "burst"),
        ({"limit": 1, "period_s": 1.0, "burst": None}, "burst"),
    ],
)
def test_invalid_limits_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RateLimit(**kwargs)
    assert caught.value.field == field


limits = st.builds(
    RateLimit,
    limit=st.integers(1, 10),
    period_s=st.sampled_from([0.3, 1.0, 7.0, 60.0, 3600.0]),
    burst=st.integers(0, 5),
)
# Arrival gaps in milliseconds, so times are exact-ish decimals well within float precision.
gaps_ms = st.lists(st.integers(0, 3_000_000), min_size=1, max_size=150)


@settings(max_examples=300)
@given(rate=limits, gaps=gaps_ms, scale=st.sampled_from([1e-3, 1e-5]))
def test_never_more_than_limit_plus_burst_in_any_period(
    rate: RateLimit, gaps: list[int], scale: float
) -> None:
    limiter: RateLimiter[str] = RateLimiter(rate)
    now, admitted = 0.0, []
    for gap in gaps:
        now += gap * scale
        if limiter.try_acquire("k", now) == 0.0:
            admitted.append(now)
    # Count admissions in every window [t, t + period) that starts at an admission;
    # the 1e-9 s slack allows for float rounding in the limiter's arithmetic.
    for start, t in enumerate(admitted):
        end = bisect.bisect_left(admitted, t + rate.period_s - 1e-9)
        assert end - start <= rate.limit + rate.burst


@settings(max_examples=300)
@given(rate=limits, gaps=gaps_ms, scale=st.sampled_from([1e-3, 1e-5]))
def test_the_wait_is_exact(rate: RateLimit, gaps: list[int], scale: float) -> None:
    limiter: RateLimiter[str] = RateLimiter(rate)
    now = 0.0
    for gap in gaps:
        now += gap * scale
        wait = limiter.try_acquire("k", now)
        assert wait >= 0.0
        if wait:
            assert limiter.peek("k", now + wait) == 0.0
            if wait > 1e-6:
                assert limiter.peek("k", now + wait - 1e-7) > 0.0


@given(rate=limits, start=st.floats(0.0, 1e6))
def test_a_client_that_waits_as_told_gets_the_full_rate(rate: RateLimit, start: float) -> None:
    limiter: RateLimiter[str] = RateLimiter(rate)
    now, calls = start, 0
    horizon = start + 3 * rate.period_s
    while now < horizon:
        wait = limiter.try_acquire("k", now)
        if wait == 0.0:
            calls += 1
        now += wait
    # burst + 1 at once, then one per interval: 3 periods hold 3 * limit intervals.
    assert calls in (rate.burst + 3 * rate.limit, rate.burst + 3 * rate.limit + 1)
