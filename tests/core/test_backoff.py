from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asched.core.backoff import RetryPolicy
from asched.errors import TaskValidationError


class FixedRandom(random.Random):
    """A generator whose ``random()`` always returns one value."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


policies = st.builds(
    RetryPolicy,
    max_retries=st.integers(0, 20),
    backoff_factor=st.floats(1.0, 10.0),
    base=st.floats(0.0, 100.0),
    max_delay=st.floats(0.0, 3600.0),
    jitter=st.sampled_from([None, "full", "equal"]),
)
retry_counts = st.integers(0, 10_000)


def test_defaults_reproduce_the_factor_to_the_power_of_retries() -> None:
    policy = RetryPolicy()
    assert [policy.delay_s(retries) for retries in range(5)] == [1.0, 2.0, 4.0, 8.0, 16.0]


def test_base_scales_and_max_delay_caps() -> None:
    policy = RetryPolicy(base=0.5, backoff_factor=3.0, max_delay=10.0)
    assert [policy.delay_s(retries) for retries in range(5)] == [0.5, 1.5, 4.5, 10.0, 10.0]


@pytest.mark.parametrize("factor", [2, 2.0, 100])
def test_huge_retry_counts_give_max_delay_instead_of_overflowing(factor: float) -> None:
    assert RetryPolicy(backoff_factor=factor, max_delay=42.0).delay_s(10**6) == 42.0


def test_zero_base_never_waits() -> None:
    assert RetryPolicy(base=0.0, jitter="equal").delay_s(10**6, random.Random(1)) == 0.0


def test_factor_one_is_a_constant_delay() -> None:
    policy = RetryPolicy(backoff_factor=1.0, base=7.0)
    assert {policy.delay_s(retries) for retries in range(50)} == {7.0}


@pytest.mark.parametrize(
    ("jitter", "draw", "expected"),
    [
        ("full", 0.0, 0.0),
        ("full", 0.5, 4.0),
        ("full", 0.75, 6.0),
        ("equal", 0.0, 4.0),
        ("equal", 0.5, 6.0),
        (None, 0.5, 8.0),
    ],
)
def test_jitter_uses_the_injected_generator(jitter: Any, draw: float, expected: float) -> None:
    assert RetryPolicy(jitter=jitter).delay_s(3, FixedRandom(draw)) == expected


def test_same_seed_gives_same_jittered_delays() -> None:
    policy = RetryPolicy(jitter="full")
    first = [policy.delay_s(n, random.Random(7)) for n in range(10)]
    assert first == [policy.delay_s(n, random.Random(7)) for n in range(10)]


def test_negative_retries_are_rejected() -> None:
    with pytest.raises(TaskValidationError, match="retries=-1"):
        RetryPolicy().delay_s(-1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("max_retries", True),
        ("backoff_factor", 0.5),
        ("backoff_factor", float("nan")),
        ("backoff_factor", float("inf")),
        ("backoff_factor", 1e300),
        ("backoff_factor", 100.5),
        ("base", -0.1),
        ("base", "1"),
        ("max_delay", -1.0),
        ("max_delay", float("inf")),
        ("max_delay", 1e300),
        ("base", 1e300),
        ("jitter", "half"),
        ("retry_on", [Exception]),
        ("retry_on", (int,)),
        ("give_up_on", ("ValueError",)),
    ],
)
def test_invalid_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(TaskValidationError) as caught:
        RetryPolicy(**{field: value})  # type: ignore[arg-type]
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


def test_policy_is_a_frozen_value() -> None:
    policy = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_retries = 9  # type: ignore[misc]
    assert policy == RetryPolicy()


@pytest.mark.parametrize(
    ("policy", "exc", "retries", "expected"),
    [
        (RetryPolicy(), ValueError(), 0, True),
        (RetryPolicy(), ValueError(), 2, True),
        (RetryPolicy(), ValueError(), 3, False),
        (RetryPolicy(max_retries=0), ValueError(), 0, False),
        (RetryPolicy(retry_on=(OSError,)), ValueError(), 0, False),
        (RetryPolicy(retry_on=(OSError,)), ConnectionError(), 0, True),
        (RetryPolicy(give_up_on=(ValueError,)), ValueError(), 0, False),
        (RetryPolicy(give_up_on=(ValueError,)), KeyError(), 0, True),
        # give_up_on wins even over a more specific retry_on
        (
            RetryPolicy(retry_on=(ConnectionError,), give_up_on=(OSError,)),
            ConnectionError(),
            0,
            False,
        ),
        (RetryPolicy(), KeyboardInterrupt(), 0, False),
    ],
)
def test_should_retry(
    policy: RetryPolicy, exc: BaseException, retries: int, expected: bool
) -> None:
    assert policy.should_retry(exc, retries) is expected


@given(policies, retry_counts, st.randoms(use_true_random=False))
def test_delay_is_within_zero_and_max_delay(
    policy: RetryPolicy, retries: int, rng: random.Random
) -> None:
    assert 0.0 <= policy.delay_s(retries, rng) <= policy.max_delay


@given(policies, retry_counts)
def test_unjittered_delay_never_decreases(policy: RetryPolicy, retries: int) -> None:
    policy = dataclasses.replace(policy, jitter=None)
    assert policy.delay_s(retries) <= policy.delay_s(retries + 1)


@given(policies, retry_counts, st.randoms(use_true_random=False))
def test_jittered_delay_stays_in_its_band(
    policy: RetryPolicy, retries: int, rng: random.Random
) -> None:
    ceiling = dataclasses.replace(policy, jitter=None).delay_s(retries)
    delay = policy.delay_s(retries, rng)
    floor = ceiling / 2 if policy.jitter == "equal" else 0.0
    if policy.jitter is None:
        floor = ceiling
    assert floor <= delay <= ceiling


@given(policies, st.integers(0, 30))
def test_should_retry_allows_exactly_max_retries(policy: RetryPolicy, retries: int) -> None:
    assert policy.should_retry(RuntimeError(), retries) is (retries < policy.max_retries)
