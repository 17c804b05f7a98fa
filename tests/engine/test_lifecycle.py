"""Every lifecycle path of the spec, through the public API, on a virtual clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from asched import (
    Scheduler,
    TaskCancelledError,
    TaskFailedError,
    TaskLifecycle,
    TaskPriority,
)
from asched.testing import FakeClock

L = TaskLifecycle


def path(task_history: list) -> list[str]:
    return [t.to_state.name for t in task_history]


async def test_typical_path_runs_at_due_time_never_before(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    seen: list[float] = []

    @s.task("publish")
    async def publish(channel_id: str) -> str:
        seen.append(clock.now())
        return f"published {channel_id}"

    async with s:
        tid = await s.schedule_task("publish", {"channel_id": "c1"}, delay=10)
        due = clock.now() + 10
        assert await s.get_task_status(tid) is L.SCHEDULED
        await clock.advance(10 - 1e-6)
        assert await s.get_task_status(tid) is L.SCHEDULED
        assert seen == []
        await clock.advance(1e-6)
        assert await s.wait_for(tid, timeout=5) == "published c1"
        task = await s.get_task(tid)
    assert seen == [due]
    assert task.lifecycle is L.COMPLETED
    assert task.result == "published c1"
    assert task.started_at is not None and task.started_at.timestamp() == pytest.approx(due)
    assert path(task.history) == ["QUEUED", "SCHEDULED", "RUNNING", "COMPLETED"]
    assert [t.from_state.name for t in task.history] == [
        "CREATED",
        "QUEUED",
        "SCHEDULED",
        "RUNNING",
    ]


async def test_retry_path_backs_off_then_fails_with_the_error_text(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    attempts: list[float] = []

    @s.task("upload", max_retries=2, backoff_factor=3)
    async def upload() -> None:
        attempts.append(clock.now())
        raise ConnectionError("quota exceeded")

    async with s:
        start = clock.now()
        tid = await s.schedule_task("upload")
        await clock.advance(0)
        assert await s.get_task_status(tid) is L.RETRYING
        await clock.advance(3 - 1e-3)
        assert len(attempts) == 1
        await clock.advance(1e-3)
        assert len(attempts) == 2
        await clock.advance(9)
        with pytest.raises(TaskFailedError, match="quota exceeded") as failure:
            await s.wait_for(tid)
        task = await s.get_task(tid)
    assert failure.value.task_id == tid
    assert attempts == [start, start + 3, start + 3 + 9]
    assert task.lifecycle is L.FAILED and task.retries == 2
    assert task.error == "ConnectionError: quota exceeded"
    assert path(task.history) == [
        "QUEUED",
        "SCHEDULED",
        "RUNNING",
        "RETRYING",
        "RUNNING",
        "RETRYING",
        "RUNNING",
        "FAILED",
    ]


async def test_retry_then_success(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    calls = 0

    @s.task("flaky", max_retries=3, backoff_factor=2)
    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("try again")
        return calls

    async with s:
        tid = await s.schedule_task("flaky")
        await clock.advance(2 + 4)
        assert await s.wait_for(tid, timeout=1) == 3
        assert (await s.get_task(tid)).retries == 2


async def test_pause_holds_and_resume_runs_once_due(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    ran: list[float] = []

    @s.task("job")
    async def job() -> None:
        ran.append(clock.now())

    async with s:
        tid = await s.schedule_task("job", delay=5)
        assert await s.pause_task(tid) is True
        assert await s.get_task_status(tid) is L.PAUSED
        await clock.advance(60)
        assert ran == []
        assert await s.resume_task(tid) is True
        await s.wait_for(tid, timeout=1)
        task = await s.get_task(tid)
    assert len(ran) == 1
    assert path(task.history) == [
        "QUEUED",
        "SCHEDULED",
        "PAUSED",
        "QUEUED",
        "SCHEDULED",
        "RUNNING",
        "COMPLETED",
    ]
    assert task.history[2].reason == "paused by request"


async def test_resume_before_due_keeps_the_original_due_time(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    ran: list[float] = []

    @s.task("job")
    async def job() -> None:
        ran.append(clock.now())

    async with s:
        start = clock.now()
        tid = await s.schedule_task("job", delay=30)
        await s.pause_task(tid)
        await clock.advance(10)
        await s.resume_task(tid)
        await clock.advance(19)
        assert ran == []
        await clock.advance(1)
        await s.wait_for(tid, timeout=1)
    assert ran == [start + 30]


async def test_cancel_pending_task(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    ran: list[str] = []

    @s.task("job")
    async def job() -> None:
        ran.append("ran")

    async with s:
        tid = await s.schedule_task("job", delay=5)
        assert await s.cancel_task(tid) is True
        assert await s.get_task_status(tid) is L.CANCELLED
        assert await s.cancel_task(tid) is False
        await clock.advance(10)
        with pytest.raises(TaskCancelledError, match="cancelled by request"):
            await s.wait_for(tid)
    assert ran == []


async def test_cancel_while_running_stops_the_coroutine(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    started = asyncio.Event()
    outcome: list[str] = []

    @s.task("render")
    async def render() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    async with s:
        tid = await s.schedule_task("render")
        await started.wait()
        assert await s.get_task_status(tid) is L.RUNNING
        assert await s.cancel_task(tid) is True
        assert await s.get_task_status(tid) is L.CANCELLED
        with pytest.raises(TaskCancelledError):
            await s.wait_for(tid)
        await clock.advance(0)
        metrics = await s.get_system_load_metrics()
    assert outcome == ["cancelled"]
    assert metrics["running"] == 0


async def test_cancel_running_frees_its_concurrency_slot(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    gate = asyncio.Event()

    @s.task("upload")
    async def upload(n: int) -> int:
        if n == 1:
            await asyncio.Event().wait()
        await gate.wait()
        return n

    async with s:
        first = await s.schedule_task("upload", {"n": 1}, concurrency_key="c1")
        second = await s.schedule_task("upload", {"n": 2}, concurrency_key="c1")
        await clock.advance(0)
        assert await s.get_task_status(second) is L.SCHEDULED
        await s.cancel_task(first)
        gate.set()
        assert await s.wait_for(second, timeout=5) == 2


async def test_wait_for_times_out_with_a_clear_error(
    make_scheduler: Callable[..., Scheduler],
) -> None:
    from asched import TaskTimeoutError

    s = make_scheduler()

    @s.task("job")
    async def job() -> None:
        return None

    async with s:
        tid = await s.schedule_task("job", delay=100)
        with pytest.raises(TaskTimeoutError, match="wait timed out"):
            await s.wait_for(tid, timeout=0.01)
        assert await s.get_task_status(tid) is L.SCHEDULED


async def test_attempt_timeout_counts_as_a_failure(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()

    @s.task("slow", timeout=5, max_retries=0)
    async def slow() -> None:
        await asyncio.Event().wait()

    async with s:
        tid = await s.schedule_task("slow")
        await clock.advance(0)
        assert await s.get_task_status(tid) is L.RUNNING
        await clock.advance(5)
        with pytest.raises(TaskFailedError, match="timed out after 5s"):
            await s.wait_for(tid, timeout=1)


async def test_higher_priority_dispatches_first_and_ties_are_fifo(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler(max_concurrency=1)
    order: list[str] = []

    @s.task("job")
    async def job(name: str) -> None:
        order.append(name)

    async with s:
        specs = [
            ("low", TaskPriority.LOW),
            ("med-1", TaskPriority.MEDIUM),
            ("critical", TaskPriority.CRITICAL),
            ("med-2", TaskPriority.MEDIUM),
            ("bg", TaskPriority.BACKGROUND),
            ("high", TaskPriority.HIGH),
        ]
        ids = [await s.schedule_task("job", {"name": n}, priority=p) for n, p in specs]
        for tid in ids:
            await s.wait_for(tid, timeout=5)
    assert order == ["critical", "high", "med-1", "med-2", "low", "bg"]


async def test_due_order_within_a_priority(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler(max_concurrency=1)
    order: list[int] = []

    @s.task("job")
    async def job(n: int) -> None:
        order.append(n)

    async with s:
        ids = [await s.schedule_task("job", {"n": n}, delay=d) for n, d in [(1, 3), (2, 1), (3, 2)]]
        await clock.advance(5)
        for tid in ids:
            await s.wait_for(tid, timeout=5)
    assert order == [2, 3, 1]
