"""The async, local and thread executors, through the public API."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from asched import Scheduler, TaskLifecycle, TaskValidationError
from asched.testing import FakeClock


async def test_local_executor_runs_sync_callables_inline(
    make_scheduler: Callable[..., Scheduler],
) -> None:
    s = make_scheduler()
    loop_thread = threading.get_ident()

    @s.task("sum", executor="local")
    def total(a: int, b: int) -> tuple[int, int]:
        return a + b, threading.get_ident()

    async with s:
        tid = await s.schedule_task("sum", {"a": 2, "b": 3})
        assert await s.wait_for(tid, timeout=5) == (5, loop_thread)


async def test_thread_executor_runs_blocking_work_off_the_loop(
    make_scheduler: Callable[..., Scheduler],
) -> None:
    s = make_scheduler(thread_pool_size=4)
    barrier = threading.Barrier(4, timeout=5)

    @s.task("fetch", executor="thread")
    def fetch(n: int) -> int:
        barrier.wait()  # only returns if four calls really run at once
        return threading.get_ident()

    async with s:
        ids = [await s.schedule_task("fetch", {"n": n}) for n in range(4)]
        threads = [await s.wait_for(tid, timeout=10) for tid in ids]
    assert threading.get_ident() not in threads
    assert len(set(threads)) == 4


async def test_thread_task_cancelled_while_running_discards_its_result(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    entered = threading.Event()
    leave = threading.Event()

    @s.task("block", executor="thread")
    def block() -> str:
        entered.set()
        leave.wait(5)
        return "late"

    async with s:
        tid = await s.schedule_task("block")
        await clock.advance(0)
        await asyncio.to_thread(entered.wait, 5)
        assert await s.cancel_task(tid) is True
        leave.set()
        await asyncio.sleep(0)
        task = await s.get_task(tid)
    assert task.lifecycle is TaskLifecycle.CANCELLED
    assert task.result is None


async def test_handler_kind_must_match_the_executor(
    make_scheduler: Callable[..., Scheduler],
) -> None:
    s = make_scheduler()

    async def coro() -> None:
        return None

    def plain() -> None:
        return None

    with pytest.raises(TaskValidationError, match="coroutine function; use 'async'"):
        s.register("a", coro, executor="thread")
    with pytest.raises(TaskValidationError, match="not a coroutine function"):
        s.register("b", plain, executor="async")
    with pytest.raises(TaskValidationError, match="unknown executor"):
        s.register("c", plain, executor="gpu")
    s.register("d", plain)  # a plain function defaults to the thread executor
    s.register("e", coro)
