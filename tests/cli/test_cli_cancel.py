"""``asched cancel`` changes one task in a store, under a lease."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from asched import Scheduler, TaskLifecycle
from asched.cli import main
from asched.stores.sqlite.store import SQLiteStore


async def _prepare(url: str) -> tuple[str, str]:
    scheduler = Scheduler(url, strict_task_types=False)
    async with scheduler:
        later = await scheduler.schedule_task("render", delay=3600)
        other = await scheduler.schedule_task("render", delay=3600)
    return later, other


async def _state(path: Path, task_id: str) -> tuple[TaskLifecycle, str | None]:
    store = SQLiteStore(str(path))
    await store.open()
    try:
        task = await store.get(task_id)
        assert task is not None
        return task.lifecycle, task.history[-1].reason
    finally:
        await store.close()


def test_cancel_a_pending_task_and_refuse_an_ended_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bot.db"
    url = f"sqlite:///{path}"
    later, other = asyncio.run(_prepare(url))
    assert main(["cancel", later, "--store", url, "--reason", "moved to tomorrow"]) == 0
    assert f"cancelled {later}" in capsys.readouterr().out
    assert asyncio.run(_state(path, later)) == (TaskLifecycle.CANCELLED, "moved to tomorrow")
    assert asyncio.run(_state(path, other))[0] is TaskLifecycle.QUEUED

    assert main(["cancel", later, "--store", url]) == 1
    assert "already ended CANCELLED" in capsys.readouterr().err
    assert main(["cancel", "nope", "--store", url]) == 1


def test_a_worker_with_a_shared_store_never_starts_a_cancelled_task(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    ran: list[int] = []

    async def produce() -> tuple[str, str]:
        producer = Scheduler(url, strict_task_types=False)
        async with producer:
            doomed = await producer.schedule_task("render", {"n": 1}, delay=1.0)
            kept = await producer.schedule_task("render", {"n": 2}, delay=1.0)
        return doomed, kept

    async def work(doomed: str, kept: str) -> TaskLifecycle:
        worker = Scheduler(url, shared_store=True, poll_interval_s=0.05)

        @worker.task("render")
        async def render(n: int) -> None:
            ran.append(n)

        async with worker:
            # The worker has both armed; an operator cancels one before it is due.
            assert await worker.get_task_status(doomed) is TaskLifecycle.SCHEDULED
            assert await asyncio.to_thread(main, ["cancel", doomed, "--store", url]) == 0
            await worker.wait_for(kept, timeout=10)
        return (await _state(tmp_path / "bot.db", doomed))[0]

    doomed, kept = asyncio.run(produce())
    assert asyncio.run(work(doomed, kept)) is TaskLifecycle.CANCELLED
    assert ran == [2]
