"""scheduler.events() and async subscribers."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable

import pytest

from asched import Scheduler, TaskLifecycle
from asched.events import (
    CircuitOpened,
    Event,
    TaskCompleted,
    TaskEvent,
    TaskQueued,
    TaskScheduled,
    TaskStarted,
)
from asched.testing import FakeClock


async def test_events_iterates_a_tasks_lifecycle_in_order(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()

    @s.task("echo")
    async def echo(n: int) -> int:
        return n

    seen: list[type[Event]] = []
    async with s:
        tid = await s.schedule_task("echo", {"n": 1})
        async with s.events() as stream:
            await clock.advance(0)
            assert await s.wait_for(tid, timeout=1) == 1
            stream.close()
            async for event in stream:
                assert isinstance(event, TaskEvent) and event.task_id == tid
                seen.append(type(event))
    assert seen == [TaskStarted, TaskCompleted]


async def test_events_can_be_limited_to_states_and_end_when_closed(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()

    @s.task("echo")
    async def echo(n: int) -> int:
        return n

    async with s:
        stream = s.events(states=[TaskLifecycle.COMPLETED])
        for n in range(3):
            await s.schedule_task("echo", {"n": n})
        await clock.advance(0)
        stream.close()
        await s.schedule_task("echo", {"n": 9})  # after close: not heard
        await clock.advance(0)
        kinds = [type(e) async for e in stream]
    assert kinds == [TaskCompleted] * 3


async def test_a_slow_reader_loses_the_oldest_events_not_the_newest(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()

    @s.task("echo")
    async def echo(n: int) -> int:
        return n

    async with s:
        stream = s.events(states=[TaskLifecycle.COMPLETED], maxsize=4)
        ids = [await s.schedule_task("echo", {"n": n}) for n in range(10)]
        await clock.advance(0)
        stream.close()
        kept = [e.task_id async for e in stream if isinstance(e, TaskEvent)]
    assert stream.dropped == 6
    assert kept == ids[-4:]


async def test_leaving_the_loop_unsubscribes(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()

    @s.task("echo")
    async def echo(n: int) -> int:
        return n

    async with s:
        stream = s.events()
        watch = weakref.ref(stream)
        await s.schedule_task("echo", {"n": 1})
        async for event in stream:
            assert isinstance(event, TaskQueued | TaskScheduled)
            break
        del stream
        gc.collect()
        # nothing holds the stream: its subscription went with it
        assert watch() is None


async def test_async_subscribers_run_as_tasks_and_never_block_the_engine(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    s = make_scheduler()
    heard: list[str] = []
    release = asyncio.Event()

    async def slow_listener(event: Event) -> None:
        await release.wait()
        assert isinstance(event, TaskEvent)
        heard.append(event.task_id)

    async def broken_listener(event: Event) -> None:
        raise RuntimeError("listener bug")

    @s.task("echo")
    async def echo(n: int) -> int:
        return n

    s.subscribe(slow_listener, [TaskLifecycle.COMPLETED])
    s.subscribe(broken_listener, [TaskLifecycle.COMPLETED])
    async with s:
        ids = [await s.schedule_task("echo", {"n": n}) for n in range(5)]
        await clock.advance(0)
        assert [await s.wait_for(t, timeout=1) for t in ids] == list(range(5))
        assert heard == []  # every listener is still waiting; the tasks are done
        release.set()
        await clock.advance(0)
    assert sorted(heard) == sorted(ids)
    failures = [r for r in caplog.records if "async event listener" in r.getMessage()]
    assert len(failures) == 5 and all(r.exc_info for r in failures)


def test_events_checks_its_size(make_scheduler: Callable[..., Scheduler]) -> None:
    from asched import TaskValidationError

    with pytest.raises(TaskValidationError, match="maxsize"):
        make_scheduler().events(maxsize=0)


async def test_no_states_at_all_hears_the_circuit_breaker_events_alone(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    s.configure_breaker("api", failure_threshold=1, recovery_s=30)
    heard: list[Event] = []
    s.subscribe(heard.append, ())

    @s.task("call", breaker="api", max_retries=0)
    async def call() -> None:
        raise ConnectionError("down")

    async with s:
        await s.schedule_task("call")
        await clock.advance(1)
    assert [type(e) for e in heard] == [CircuitOpened]
