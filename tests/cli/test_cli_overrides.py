"""The Scheduler hooks ``asched run`` relies on: use_store, set_max_concurrency,
end_grace, and choosing the worker's store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from asched import Scheduler, SchedulerStateError, Task, TaskLifecycle, TaskValidationError
from asched.cli.app import DEFAULT_WORKER_STORE, choose_store
from asched.stores import MemoryStore
from asched.stores.sqlite.store import SQLiteStore


async def test_use_store_before_start_makes_the_scheduler_durable(tmp_path: Path) -> None:
    scheduler = Scheduler()
    url = f"sqlite:///{tmp_path / 'w.db'}"
    scheduler.use_store(url)
    assert isinstance(scheduler.store, SQLiteStore)
    assert scheduler.config.store_url == url

    @scheduler.task("job")
    async def job() -> int:
        return 7

    async with scheduler:
        task_id = await scheduler.schedule_task("job")
        assert await scheduler.wait_for(task_id, timeout=5) == 7
        with pytest.raises(SchedulerStateError):
            scheduler.use_store("memory://")
    stored = await _stored(tmp_path / "w.db", task_id)
    assert stored.lifecycle is TaskLifecycle.COMPLETED


async def test_set_max_concurrency_limits_running_tasks() -> None:
    scheduler = Scheduler()
    scheduler.set_max_concurrency(2)
    with pytest.raises(TaskValidationError):
        scheduler.set_max_concurrency(0)
    peak = running = 0
    gate = asyncio.Event()

    @scheduler.task("job")
    async def job() -> None:
        nonlocal peak, running
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1

    async with scheduler:
        ids = [await scheduler.schedule_task("job") for _ in range(5)]
        await asyncio.sleep(0.05)
        assert (await scheduler.get_system_load_metrics())["max_concurrency"] == 2
        gate.set()
        for task_id in ids:
            await scheduler.wait_for(task_id, timeout=5)
    assert peak == 2


async def test_end_grace_cuts_a_stop_short() -> None:
    scheduler = Scheduler()
    started = asyncio.Event()

    @scheduler.task("stuck")
    async def stuck() -> None:
        started.set()
        await asyncio.Event().wait()

    await scheduler.start()
    assert scheduler.end_grace() == 0  # no stop in progress: nothing happens
    task_id = await scheduler.schedule_task("stuck")
    await started.wait()
    stopping = asyncio.create_task(scheduler.stop(grace_s=60))
    await asyncio.sleep(0)
    assert scheduler.end_grace() == 1
    await asyncio.wait_for(stopping, timeout=5)
    task = await scheduler.get_task(task_id)
    assert task.lifecycle is TaskLifecycle.QUEUED
    assert "shutdown" in (task.history[-1].reason or "")


def test_the_worker_store_precedence(tmp_path: Path) -> None:
    in_memory = Scheduler()
    durable = Scheduler(f"sqlite:///{tmp_path / 'app.db'}")
    assert choose_store("sqlite:///cli.db", durable) == "sqlite:///cli.db"
    assert choose_store(None, durable) is None
    assert choose_store(None, in_memory) == DEFAULT_WORKER_STORE
    assert isinstance(in_memory.store, MemoryStore)


async def test_share_store_before_start_puts_every_attempt_under_a_lease(tmp_path: Path) -> None:
    scheduler = Scheduler(f"sqlite:///{tmp_path / 's.db'}")
    scheduler.share_store(lease_s=5.0)
    assert scheduler.config.shared_store and scheduler.config.lease_s == 5.0

    @scheduler.task("job")
    async def job() -> int:
        return 1

    async with scheduler:
        task_id = await scheduler.schedule_task("job")
        assert await scheduler.wait_for(task_id, timeout=5) == 1
        with pytest.raises(SchedulerStateError, match="before start"):
            scheduler.share_store()
    history = [t.to_state.name for t in (await _stored(tmp_path / "s.db", task_id)).history]
    assert history == ["QUEUED", "SCHEDULED", "RUNNING", "COMPLETED"]


async def _stored(path: Path, task_id: str) -> Task:
    store = SQLiteStore(path)
    await store.open()
    try:
        task = await store.get(task_id)
    finally:
        await store.close()
    assert task is not None
    return task
