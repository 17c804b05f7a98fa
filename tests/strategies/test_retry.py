from __future__ import annotations

import asyncio
import random
from typing import assert_type

import pytest

from asched.core.backoff import RetryPolicy
from asched.errors import TaskValidationError
from asched.strategies import Retry, retry


class SleepRecorder:
    """An injectable ``sleep`` that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)


class Flaky:
    """Raises the queued exceptions one per call, then returns ``result``."""

    def __init__(self, *failures: BaseException, result: str = "ok") -> None:
        self.failures = list(failures)
        self.result = result
        self.calls = 0

    async def __call__(self, x: int) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return f"{self.result}:{x}"


async def test_bare_decorator_retries_and_keeps_the_signature() -> None:
    attempts: list[int] = []

    @retry
    async def fetch(x: int) -> str:
        """Fetch x."""
        attempts.append(x)
        if len(attempts) < 3:
            raise Retry(delay_s=0.0)
        return str(x)

    result = await fetch(7)
    assert_type(result, str)
    assert result == "7"
    assert attempts == [7, 7, 7]
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch x."


async def test_defaults_back_off_two_four_eight_then_raise_the_last_error() -> None:
    errors = [OSError("first"), OSError("second"), OSError("third"), OSError("last")]
    flaky = Flaky(*errors)
    sleep = SleepRecorder()
    wrapped = retry(sleep=sleep)(flaky)

    with pytest.raises(OSError) as caught:
        await wrapped(1)
    assert caught.value is errors[-1]
    assert flaky.calls == 4  # one attempt + max_retries=3
    assert sleep.delays == [2.0, 4.0, 8.0]


async def test_succeeds_after_failures() -> None:
    flaky = Flaky(OSError(), OSError())
    sleep = SleepRecorder()
    assert await retry(max_retries=5, base=0.5, sleep=sleep)(flaky)(3) == "ok:3"
    assert sleep.delays == [1.0, 2.0]


async def test_jitter_draws_from_the_injected_generator() -> None:
    sleep = SleepRecorder()
    flaky = Flaky(OSError(), OSError(), OSError())
    await retry(jitter="full", sleep=sleep, rng=random.Random(42))(flaky)(0)
    replay = random.Random(42)
    assert sleep.delays == [RetryPolicy(jitter="full").delay_s(n, replay) for n in (1, 2, 3)]
    assert all(0.0 <= d <= 2.0**n for n, d in enumerate(sleep.delays, start=1))
    assert sleep.delays != [2.0, 4.0, 8.0]


async def test_exceptions_outside_retry_on_propagate_at_once() -> None:
    flaky = Flaky(ValueError("bad input"))
    sleep = SleepRecorder()
    with pytest.raises(ValueError, match="bad input"):
        await retry(retry_on=(OSError,), sleep=sleep)(flaky)(0)
    assert flaky.calls == 1
    assert sleep.delays == []


async def test_give_up_on_wins_over_retry_on() -> None:
    flaky = Flaky(PermissionError())
    sleep = SleepRecorder()
    with pytest.raises(PermissionError):
        await retry(retry_on=(OSError,), give_up_on=(PermissionError,), sleep=sleep)(flaky)(0)
    assert flaky.calls == 1


async def test_settings_override_the_policy() -> None:
    policy = RetryPolicy(max_retries=1, base=3.0, backoff_factor=1.0)
    flaky = Flaky(OSError(), OSError())
    sleep = SleepRecorder()
    assert await retry(policy=policy, max_retries=2, sleep=sleep)(flaky)(0) == "ok:0"
    assert sleep.delays == [3.0, 3.0]


async def test_retry_request_sets_the_delay_and_counts_as_a_retry() -> None:
    flaky = Flaky(Retry(delay_s=5.0), Retry(), OSError())
    sleep = SleepRecorder()
    assert await retry(sleep=sleep)(flaky)(0) == "ok:0"
    assert sleep.delays == [5.0, 4.0, 8.0]


async def test_retry_request_is_honoured_even_outside_retry_on() -> None:
    flaky = Flaky(Retry(delay_s=1.0))
    sleep = SleepRecorder()
    assert await retry(retry_on=(OSError,), sleep=sleep)(flaky)(0) == "ok:0"
    assert sleep.delays == [1.0]


async def test_retry_request_propagates_when_no_retries_are_left() -> None:
    request = Retry(delay_s=1.0)
    flaky = Flaky(Retry(delay_s=1.0), request)
    with pytest.raises(Retry) as caught:
        await retry(max_retries=1, sleep=SleepRecorder())(flaky)(0)
    assert caught.value is request


@pytest.mark.parametrize("delay_s", [-1.0, float("nan"), float("inf"), "5"])
def test_retry_request_rejects_bad_delays(delay_s: object) -> None:
    with pytest.raises(TaskValidationError):
        Retry(delay_s=delay_s)  # type: ignore[arg-type]


@pytest.mark.parametrize("retry_on", [(Exception,), (BaseException,)])
async def test_cancellation_is_never_retried(retry_on: tuple[type[BaseException], ...]) -> None:
    flaky = Flaky(asyncio.CancelledError())
    sleep = SleepRecorder()
    with pytest.raises(asyncio.CancelledError):
        await retry(retry_on=retry_on, sleep=sleep)(flaky)(0)
    assert flaky.calls == 1
    assert sleep.delays == []


async def test_cancelling_during_the_backoff_stops_retrying() -> None:
    flaky = Flaky(OSError(), OSError())
    sleeping = asyncio.Event()

    async def sleep_forever(delay_s: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(retry(sleep=sleep_forever)(flaky)(0))
    await sleeping.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert flaky.calls == 1


async def test_works_on_methods() -> None:
    sleep = SleepRecorder()

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @retry(max_retries=2, sleep=sleep)
        async def get(self, path: str) -> str:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError(path)
            return path.upper()

    client = Client()
    result = await client.get("/a")
    assert_type(result, str)
    assert result == "/A"
    assert client.calls == 2
    assert sleep.delays == [2.0]


def test_bad_settings_fail_at_decoration() -> None:
    with pytest.raises(TaskValidationError) as caught:
        retry(max_retries=-1)
    assert caught.value.field == "max_retries"
