"""Handlers that raise what an ``except Exception`` lets through.

``SystemExit``, ``KeyboardInterrupt``, ``GeneratorExit``, a custom
``BaseException`` and a ``CancelledError`` nobody asked for each fail the
attempt with the exception named; the scheduler stays responsive, the slot is
freed, and a failure is a failure (retried while retries are left).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from asched import Scheduler, TaskFailedError, TaskLifecycle
from asched.testing import FakeClock, settle

L = TaskLifecycle


class Meltdown(BaseException):
    """Not an Exception: a handler's own BaseException subclass."""


RAISERS: dict[str, Callable[[], BaseException]] = {
    "SystemExit": lambda: SystemExit(3),
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
    "Meltdown": lambda: Meltdown("core breach"),
    "CancelledError": asyncio.CancelledError,
}
EXECUTORS = ["async", "thread", "local"]


def _register(scheduler: Scheduler, executor: str, kind: str, max_retries: int) -> None:
    make = RAISERS[kind]
    if executor == "async":

        async def handler() -> None:
            raise make()

    else:

        def handler() -> None:  # type: ignore[misc]
            raise make()

    scheduler.register("bad", handler, executor=executor, max_retries=max_retries)

    async def good(n: int) -> int:
        return n + 1

    scheduler.register("good", good)


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("kind", list(RAISERS))
async def test_the_attempt_fails_naming_the_exception(executor: str, kind: str) -> None:
    scheduler = Scheduler(max_concurrency=1)
    _register(scheduler, executor, kind, max_retries=0)
    async with scheduler:
        bad = await scheduler.schedule_task("bad")
        with pytest.raises(TaskFailedError, match=kind):
            await scheduler.wait_for(bad, timeout=10)
        task = await scheduler.get_task(bad)
        assert task.lifecycle is L.FAILED
        assert task.error is not None and task.error.startswith(kind)
        # The one slot was freed and the loop still runs work.
        good = await scheduler.schedule_task("good", {"n": 1})
        assert await scheduler.wait_for(good, timeout=10) == 2
        assert scheduler.state_count(L.RUNNING) == 0


@pytest.mark.parametrize("kind", list(RAISERS))
async def test_each_counts_as_a_failed_attempt_and_is_retried(
    kind: str, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    scheduler = make_scheduler()
    _register(scheduler, "async", kind, max_retries=2)
    await scheduler.start()
    bad = await scheduler.schedule_task("bad")
    for _ in range(10):
        await settle()
        if (await scheduler.get_task_status(bad)).is_terminal:
            break
        await clock.jump()
    task = await scheduler.get_task(bad)
    assert task.lifecycle is L.FAILED
    assert task.retries == 2
    failures = [h.reason for h in task.history if h.to_state is L.RETRYING]
    assert len(failures) == 2
    assert all(kind in (reason or "") for reason in failures)


async def test_a_cancel_inside_the_handler_is_a_failure_not_a_hand_back() -> None:
    scheduler = Scheduler()

    @scheduler.task("awaits_a_cancelled_future", max_retries=0)
    async def awaits() -> None:
        doomed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(doomed.cancel)
        await doomed

    async with scheduler:
        tid = await scheduler.schedule_task("awaits_a_cancelled_future")
        with pytest.raises(TaskFailedError, match="CancelledError"):
            await scheduler.wait_for(tid, timeout=10)


async def test_cancels_the_scheduler_asks_for_keep_their_meaning() -> None:
    scheduler = Scheduler()
    started = asyncio.Event()

    @scheduler.task("slow", max_retries=0)
    async def slow() -> None:
        started.set()
        await asyncio.Event().wait()

    await scheduler.start()
    timed = await scheduler.schedule_task("slow", timeout=0.05)
    with pytest.raises(TaskFailedError, match="timed out"):
        await scheduler.wait_for(timed, timeout=10)
    started.clear()
    cancelled = await scheduler.schedule_task("slow")
    await started.wait()
    assert await scheduler.cancel_task(cancelled)
    assert (await scheduler.get_task(cancelled)).lifecycle is L.CANCELLED
    started.clear()
    handed_back = await scheduler.schedule_task("slow")
    await started.wait()
    store = scheduler.store
    await scheduler.stop(grace_s=0.01)
    stored = await store.get(handed_back)
    assert stored is not None and stored.lifecycle is L.QUEUED
    assert stored.retries == 0


def _plain_asyncio_run(kind: str) -> Any:
    async def main() -> Any:
        scheduler = Scheduler()
        _register(scheduler, "async", kind, max_retries=0)
        async with scheduler:
            tid = await scheduler.schedule_task("bad")
            return await _state(scheduler, tid)

    return asyncio.run(main())


async def _state(scheduler: Scheduler, tid: str) -> str:
    try:
        await scheduler.wait_for(tid, timeout=10)
    except TaskFailedError as exc:
        return str(exc)
    return "completed"


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt"])
def test_plain_asyncio_run_survives_the_handler(kind: str) -> None:
    assert kind in _plain_asyncio_run(kind)


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt", "Meltdown"])
async def test_a_process_handler_reports_the_exception_and_its_worker_lives(kind: str) -> None:
    import fault_handlers

    scheduler = Scheduler(process_pool_size=1)
    scheduler.register("exits", fault_handlers.exits, executor="process", max_retries=0)
    async with scheduler:
        first = await scheduler.schedule_task("exits", {"kind": kind})
        with pytest.raises(TaskFailedError, match=kind):
            await scheduler.wait_for(first, timeout=30)
        again = await scheduler.schedule_task("exits", {"kind": kind})
        with pytest.raises(TaskFailedError, match=kind):
            await scheduler.wait_for(again, timeout=30)
        assert "died" not in ((await scheduler.get_task(again)).error or "")
