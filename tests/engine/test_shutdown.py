"""Graceful shutdown: finish within the grace period, hand back the rest, drop nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from asched import Scheduler, SchedulerStateError, TaskLifecycle
from asched.stores import MemoryStore
from asched.testing import FakeClock

L = TaskLifecycle


async def test_stop_lets_quick_tasks_finish_and_hands_back_the_rest(clock: FakeClock) -> None:
    store = MemoryStore()
    s = Scheduler(store, clock=clock)
    quick_started = asyncio.Event()
    finish_quick = asyncio.Event()

    @s.task("quick")
    async def quick() -> str:
        quick_started.set()
        await finish_quick.wait()
        return "done"

    @s.task("stuck")
    async def stuck() -> None:
        await asyncio.Event().wait()

    await s.start()
    q = await s.schedule_task("quick")
    st = await s.schedule_task("stuck")
    later = await s.schedule_task("quick", delay=3600)
    await quick_started.wait()
    stopping = asyncio.create_task(s.stop(grace_s=0.05))
    await asyncio.sleep(0)
    finish_quick.set()
    await stopping
    assert (await store.get(q)).lifecycle is L.COMPLETED  # type: ignore[union-attr]
    stuck_task = await store.get(st)
    assert stuck_task is not None and stuck_task.lifecycle is L.QUEUED
    assert stuck_task.history[-1].reason == "interrupted by shutdown; handed back"
    assert (await store.get(later)).lifecycle is L.QUEUED  # type: ignore[union-attr]
    with pytest.raises(SchedulerStateError, match="shutting down"):
        await s.schedule_task("quick")


async def test_restart_on_the_same_store_runs_what_was_handed_back(clock: FakeClock) -> None:
    store = MemoryStore()
    ran: list[str] = []

    def build() -> Scheduler:
        s = Scheduler(store, clock=clock)

        @s.task("job")
        async def job(name: str) -> None:
            ran.append(name)

        return s

    first = build()
    await first.start()
    soon = await first.schedule_task("job", {"name": "soon"}, delay=10)
    await first.stop()
    assert ran == []
    second = build()
    async with second:
        await clock.advance(10)
        await second.wait_for(soon, timeout=1)
    assert ran == ["soon"]


async def test_schedule_before_start_is_a_clear_error(
    make_scheduler: Callable[..., Scheduler],
) -> None:
    s = make_scheduler()
    with pytest.raises(SchedulerStateError, match="not started"):
        await s.schedule_task("x")
