"""Retry policies, circuit breakers, rate limits, ageing and fair share inside the scheduler."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from asched import Retry, RetryPolicy, Scheduler, TaskFailedError, TaskLifecycle, TaskPriority
from asched.core.ratelimit import RateLimit
from asched.events import CircuitClosed, CircuitHalfOpened, CircuitOpened, Event
from asched.strategies.priority import Ageing
from asched.testing import FakeClock

L = TaskLifecycle


async def test_retry_policy_gives_up_on_errors_it_does_not_retry(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    policy = RetryPolicy(max_retries=5, backoff_factor=2, retry_on=(ConnectionError,))

    @s.task("upload", retry=policy)
    async def upload(kind: str) -> None:
        raise (ConnectionError if kind == "net" else ValueError)(kind)

    async with s:
        bad = await s.schedule_task("upload", {"kind": "bad"})
        net = await s.schedule_task("upload", {"kind": "net"})
        await clock.advance(0)
        with pytest.raises(TaskFailedError, match="ValueError: bad"):
            await s.wait_for(bad, timeout=1)
        assert (await s.get_task(bad)).retries == 0
        assert await s.get_task_status(net) is L.RETRYING
        task = await s.get_task(net)
    assert task.max_retries == 5
    assert task.scheduled_for.timestamp() == pytest.approx(clock.now() + 2)


async def test_handler_can_ask_for_a_specific_retry_delay(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    calls: list[float] = []

    @s.task("poll", max_retries=2)
    async def poll() -> str:
        calls.append(clock.now())
        if len(calls) == 1:
            raise Retry(delay_s=42.0)
        return "ready"

    async with s:
        start = clock.now()
        tid = await s.schedule_task("poll")
        await clock.advance(41.9)
        assert len(calls) == 1
        await clock.advance(0.1)
        assert await s.wait_for(tid, timeout=1) == "ready"
        reason = (await s.get_task(tid)).history[3].reason
    assert calls == [start, start + 42.0]
    assert reason is not None and "retrying in 42s" in reason


async def test_open_circuit_defers_tasks_without_spending_attempts(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    s.configure_breaker("video-api", failure_threshold=2, recovery_s=30)
    events: list[Event] = []
    s.subscribe(events.append)
    healthy = False

    @s.task("render", breaker="video-api", max_retries=0)
    async def render(n: int) -> int:
        if not healthy:
            raise ConnectionError("503")
        return n

    async with s:
        failing = [await s.schedule_task("render", {"n": n}) for n in range(2)]
        await clock.advance(0)
        for tid in failing:
            assert await s.get_task_status(tid) is L.FAILED
        assert s.breaker_states() == {"video-api": "open"}
        waiting = [await s.schedule_task("render", {"n": n}) for n in range(2, 5)]
        await clock.advance(0)
        for tid in waiting:
            task = await s.get_task(tid)
            assert task.lifecycle is L.SCHEDULED
            assert task.retries == 0
            assert task.wait_reason == "circuit 'video-api' is open"
        healthy = True
        await clock.advance(30)
        assert [await s.wait_for(tid, timeout=1) for tid in waiting] == [2, 3, 4]
        assert s.breaker_states() == {"video-api": "closed"}
    kinds = [type(e) for e in events if not hasattr(e, "task_id")]
    assert kinds == [CircuitOpened, CircuitHalfOpened, CircuitClosed]


async def test_half_open_circuit_lets_exactly_k_trials_through_under_concurrency(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler(max_concurrency=500)
    s.configure_breaker("api", failure_threshold=1, recovery_s=5, half_open_max_calls=3)
    in_flight = 0
    peak = 0
    release = asyncio.Event()
    fail_first = True

    @s.task("call", breaker="api", max_retries=0)
    async def call() -> None:
        nonlocal in_flight, peak, fail_first
        if fail_first:
            fail_first = False
            raise ConnectionError("down")
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1

    async with s:
        first = await s.schedule_task("call")
        await clock.advance(0)
        assert await s.get_task_status(first) is L.FAILED
        ids = await s.schedule_many([{"task_type": "call"} for _ in range(200)])
        await clock.advance(5)
        statuses = [await s.get_task_status(t) for t in ids]
        assert statuses.count(L.RUNNING) == 3
        assert in_flight == 3
        release.set()
        for tid in ids:
            await s.wait_for(tid, timeout=5)
    assert peak >= 3
    assert s.breaker_states() == {"api": "closed"}


async def test_rate_limit_makes_tasks_wait_not_fail(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler(key_concurrency=10)
    starts: list[tuple[str, float]] = []

    @s.task("upload", rate_limit=RateLimit(limit=2, period_s=60, burst=1))
    async def upload(channel: str) -> None:
        starts.append((channel, clock.now()))

    async with s:
        t0 = clock.now()
        ids = [
            await s.schedule_task("upload", {"channel": "c1"}, concurrency_key="c1")
            for _ in range(4)
        ]
        other = await s.schedule_task("upload", {"channel": "c2"}, concurrency_key="c2")
        await clock.advance(0)
        third = await s.get_task(ids[2])
        assert third.lifecycle is L.SCHEDULED
        assert third.wait_reason == "rate limit 2 per 60s for 'c1'"
        await clock.advance(60)
        for tid in [*ids, other]:
            await s.wait_for(tid, timeout=1)
    c1 = [at - t0 for ch, at in starts if ch == "c1"]
    assert c1 == [0, 0, 30, 60]
    assert ("c2", t0) in starts


async def test_fair_share_serves_a_small_channel_among_a_big_backlog(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler(max_concurrency=1, key_concurrency=10_000, fair_share=True)
    order: list[str] = []

    @s.task("publish")
    async def publish(channel: str) -> None:
        order.append(channel)

    async with s:
        ids = await s.schedule_many(
            [
                {"task_type": "publish", "task_data": {"channel": "A"}, "concurrency_key": "A"}
                for _ in range(5000)
            ]
        )
        lone = await s.schedule_task("publish", {"channel": "B"}, concurrency_key="B")
        await s.wait_for(lone, timeout=10)
        position = order.index("B")
        for tid in ids:
            await s.wait_for(tid, timeout=30)
    assert position <= 2


async def test_without_fair_share_the_backlog_goes_first(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler(max_concurrency=1, key_concurrency=10_000)
    order: list[str] = []

    @s.task("publish")
    async def publish(channel: str) -> None:
        order.append(channel)

    async with s:
        await s.schedule_many(
            [
                {"task_type": "publish", "task_data": {"channel": "A"}, "concurrency_key": "A"}
                for _ in range(50)
            ]
        )
        lone = await s.schedule_task("publish", {"channel": "B"}, concurrency_key="B")
        await s.wait_for(lone, timeout=10)
    assert order.index("B") == 50


async def test_ageing_lifts_background_work_above_fresh_medium_work(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler(max_concurrency=1, priority_strategy=Ageing(threshold_s=60))
    order: list[str] = []
    gate = asyncio.Event()

    @s.task("job")
    async def job(name: str) -> None:
        if name == "blocker":
            await gate.wait()
        order.append(name)

    async with s:
        await s.schedule_task("job", {"name": "blocker"}, priority=TaskPriority.CRITICAL)
        await clock.advance(0)
        old = await s.schedule_task("job", {"name": "old-bg"}, priority=TaskPriority.BACKGROUND)
        await clock.advance(180)  # three thresholds: BACKGROUND (4) -> HIGH (1), the ceiling
        fresh = await s.schedule_task("job", {"name": "fresh-med"}, priority=TaskPriority.MEDIUM)
        gate.set()
        await s.wait_for(old, timeout=5)
        await s.wait_for(fresh, timeout=5)
    assert order == ["blocker", "old-bg", "fresh-med"]
