from __future__ import annotations

import asyncio
import logging
from typing import assert_type

import pytest

from asched.errors import CircuitOpenError, ConfigError
from asched.strategies import BreakerState, BreakerTransition, CircuitBreaker, circuit_breaker


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def state_of(breaker: CircuitBreaker) -> BreakerState:
    # A function call, so that mypy does not narrow the property across awaits.
    return breaker.state


async def fail(exc: BaseException) -> None:
    raise exc


async def succeed(value: int) -> int:
    return value


async def trip(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(OSError):
            await breaker.call(fail, OSError("down"))


async def test_opens_after_the_threshold_and_then_fails_fast(clock: FakeClock) -> None:
    breaker = CircuitBreaker("api", failure_threshold=3, recovery_s=30.0, clock=clock)
    await trip(breaker, 2)
    assert state_of(breaker) is BreakerState.CLOSED
    await trip(breaker, 1)
    assert state_of(breaker) is BreakerState.OPEN

    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1

    clock.now = 10.0
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(counted)
    assert calls == 0
    assert caught.value.name == "api"
    assert caught.value.retry_after_s == 20.0


async def test_recovers_through_a_successful_trial(clock: FakeClock) -> None:
    breaker = CircuitBreaker("api", failure_threshold=1, recovery_s=5.0, clock=clock)
    await trip(breaker, 1)
    clock.now = 5.0
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert await breaker.call(succeed, 4) == 4
    assert state_of(breaker) is BreakerState.CLOSED
    assert [(t.from_state, t.to_state) for t in breaker.drain_transitions()] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


@pytest.mark.parametrize("trials", [1, 3])
async def test_half_open_admits_exactly_the_trial_calls_under_concurrency(
    clock: FakeClock, trials: int
) -> None:
    breaker = CircuitBreaker(
        "api", failure_threshold=1, recovery_s=1.0, half_open_max_calls=trials, clock=clock
    )
    await trip(breaker, 1)
    clock.now = 1.0
    started = 0
    release = asyncio.Event()

    async def slow_trial(value: int) -> int:
        nonlocal started
        started += 1
        await release.wait()  # holds its trial slot while others arrive
        return value

    async def call(value: int) -> int:
        return await breaker.call(slow_trial, value)

    tasks = [asyncio.create_task(call(n)) for n in range(200)]
    for _ in range(5):  # let every call reach the breaker
        await asyncio.sleep(0)
    assert sum(task.done() for task in tasks) == 200 - trials
    assert started == trials
    assert state_of(breaker) is BreakerState.HALF_OPEN
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    refused = [r for r in results if isinstance(r, CircuitOpenError)]
    assert len(refused) == 200 - trials
    assert sorted(r for r in results if isinstance(r, int)) == list(range(trials))
    assert state_of(breaker) is BreakerState.CLOSED


async def test_a_cancelled_trial_gives_its_slot_back(clock: FakeClock) -> None:
    breaker = CircuitBreaker("api", failure_threshold=1, recovery_s=1.0, clock=clock)
    await trip(breaker, 1)
    clock.now = 1.0
    entered = asyncio.Event()

    async def hang() -> None:
        entered.set()
        await asyncio.Event().wait()

    trial = asyncio.create_task(breaker.call(hang))
    await entered.wait()
    with pytest.raises(CircuitOpenError) as caught:
        await breaker.call(succeed, 1)
    assert caught.value.retry_after_s is None
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert state_of(breaker) is BreakerState.HALF_OPEN  # cancellation is no verdict
    assert await breaker.call(succeed, 2) == 2
    assert state_of(breaker) is BreakerState.CLOSED


async def test_cancellation_is_not_a_failure(clock: FakeClock) -> None:
    breaker = CircuitBreaker("api", failure_threshold=1, failure_on=(BaseException,), clock=clock)
    with pytest.raises(asyncio.CancelledError):
        await breaker.call(fail, asyncio.CancelledError())
    assert state_of(breaker) is BreakerState.CLOSED


async def test_only_failure_on_exceptions_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker("api", failure_threshold=2, failure_on=(OSError,), clock=clock)
    await trip(breaker, 1)
    for _ in range(5):
        with pytest.raises(ValueError):
            await breaker.call(fail, ValueError("bad request"))
    # The ValueErrors show the service answering: they reset the failure streak.
    await trip(breaker, 1)
    assert state_of(breaker) is BreakerState.CLOSED
    await trip(breaker, 1)
    assert state_of(breaker) is BreakerState.OPEN


async def test_a_straggler_cannot_close_a_half_open_breaker(clock: FakeClock) -> None:
    breaker = CircuitBreaker("api", failure_threshold=1, recovery_s=1.0, clock=clock)
    finish = asyncio.Event()

    async def slow() -> int:
        await finish.wait()
        return 1

    straggler = asyncio.create_task(breaker.call(slow))
    await asyncio.sleep(0)
    await trip(breaker, 1)
    clock.now = 1.0
    assert state_of(breaker) is BreakerState.HALF_OPEN
    finish.set()
    assert await straggler == 1
    assert state_of(breaker) is BreakerState.HALF_OPEN


async def test_decorator_with_arguments_keeps_the_signature(clock: FakeClock) -> None:
    @circuit_breaker(name="db", failure_threshold=1, clock=clock)
    async def query(sql: str, limit: int = 10) -> list[str]:
        """Run sql."""
        if sql == "boom":
            raise OSError(sql)
        return [sql] * limit

    rows = await query("select", limit=2)
    assert_type(rows, list[str])
    assert rows == ["select", "select"]
    assert query.__name__ == "query"
    assert query.__doc__ == "Run sql."
    with pytest.raises(OSError):
        await query("boom")
    with pytest.raises(CircuitOpenError, match="'db'"):
        await query("select")


async def test_bare_decorator_names_the_breaker_after_the_function() -> None:
    @circuit_breaker
    async def flaky_upload(path: str) -> str:
        raise OSError(path)

    for _ in range(5):
        with pytest.raises(OSError):
            await flaky_upload("a.mp4")
    with pytest.raises(CircuitOpenError, match="flaky_upload"):
        await flaky_upload("a.mp4")


async def test_one_breaker_can_guard_several_functions(clock: FakeClock) -> None:
    shared = CircuitBreaker("youtube", failure_threshold=2, clock=clock)

    @circuit_breaker(breaker=shared)
    async def upload() -> None:
        raise OSError("upload")

    @shared
    async def stats() -> int:
        return 1

    with pytest.raises(OSError):
        await upload()
    assert await stats() == 1  # a success resets the streak
    for _ in range(2):
        with pytest.raises(OSError):
            await upload()
    with pytest.raises(CircuitOpenError):
        await stats()


async def test_works_on_methods(clock: FakeClock) -> None:
    class Channel:
        def __init__(self, name: str) -> None:
            self.name = name

        @circuit_breaker(failure_threshold=1, clock=clock)
        async def publish(self, title: str) -> str:
            return f"{self.name}:{title}"

    assert await Channel("c1").publish("t") == "c1:t"


def test_breaker_and_settings_together_are_refused() -> None:
    shared = CircuitBreaker("x")
    with pytest.raises(ConfigError, match="failure_threshold, name"):
        circuit_breaker(breaker=shared, name="y", failure_threshold=2)


@pytest.mark.parametrize("failure_on", [[OSError], (OSError, "ValueError")])
def test_failure_on_must_be_exception_classes(failure_on: object) -> None:
    with pytest.raises(ConfigError) as caught:
        CircuitBreaker("x", failure_on=failure_on)  # type: ignore[arg-type]
    assert caught.value.field == "failure_on"


async def test_listener_gets_each_transition_and_its_errors_are_contained(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[BreakerTransition] = []

    def listener(transition: BreakerTransition) -> None:
        seen.append(transition)
        raise RuntimeError("listener bug")

    breaker = CircuitBreaker(
        "api", failure_threshold=1, recovery_s=2.0, clock=clock, on_transition=listener
    )
    with caplog.at_level(logging.ERROR, logger="asched.strategies.circuit_breaker"):
        await trip(breaker, 1)
        clock.now = 2.0
        assert await breaker.call(succeed, 1) == 1
    assert [(t.to_state, t.at) for t in seen] == [
        (BreakerState.OPEN, 0.0),
        (BreakerState.HALF_OPEN, 2.0),
        (BreakerState.CLOSED, 2.0),
    ]
    assert breaker.drain_transitions() == []
    assert len([r for r in caplog.records if "listener failed" in r.message]) == 3
