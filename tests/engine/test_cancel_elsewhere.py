"""Cancelling a task another process holds goes through the engine's door, under a lease."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from asched import Scheduler, TaskLifecycle
from asched.errors import TaskCancelledError
from asched.events import Event, TaskCancelled
from asched.middleware.audit import acting_as


def _worker(path: Path) -> Scheduler:
    scheduler = Scheduler(f"sqlite:///{path}", shared_store=True, lease_s=5.0)
    started = asyncio.Event()
    release = asyncio.Event()
    scheduler.started_event = started  # type: ignore[attr-defined]
    scheduler.release_event = release  # type: ignore[attr-defined]

    @scheduler.task("slow")
    async def slow() -> str:
        started.set()
        await release.wait()
        return "done"

    @scheduler.task("later")
    async def later() -> None: ...

    return scheduler


async def test_an_operator_scheduler_cancels_a_stored_task_with_an_event(tmp_path: Path) -> None:
    worker = _worker(tmp_path / "bot.db")
    async with worker:
        tid = await worker.schedule_task("later", delay=3600)
        operator = Scheduler(f"sqlite:///{tmp_path / 'bot.db'}")
        heard: list[Event] = []
        operator.subscribe(heard.append)
        await operator.connect()
        try:
            assert await operator.cancel_task(tid, "cancelled by the operator") is True
            assert (await operator.get_task(tid)).lifecycle is TaskLifecycle.CANCELLED
            assert await operator.cancel_task(tid) is False  # already ended
        finally:
            await operator.disconnect()
        assert [type(e) for e in heard] == [TaskCancelled]
        assert heard[0].reason == "cancelled by the operator"  # type: ignore[attr-defined]


async def test_a_task_running_in_another_process_is_cancelled_by_its_worker(
    tmp_path: Path,
) -> None:
    worker = _worker(tmp_path / "bot.db")
    async with worker:
        tid = await worker.schedule_task("slow")
        await asyncio.wait_for(worker.started_event.wait(), 10)  # type: ignore[attr-defined]
        operator = Scheduler(f"sqlite:///{tmp_path / 'bot.db'}")
        await operator.connect()
        try:
            with acting_as("ops-desk"):
                assert await operator.cancel_task(tid, "stop it") is True
            assert (await operator.get_task(tid)).lifecycle is TaskLifecycle.CANCELLED
        finally:
            await operator.disconnect()
        with pytest.raises(TaskCancelledError):
            await worker.wait_for(tid, timeout=10)
        trail = await worker.get_audit_trail(tid)
        asked = [e for e in trail if e.get("action") == "cancel"]
        assert [(e["by"], e["reason"]) for e in asked] == [("ops-desk", "stop it")]
        assert worker.running  # the worker carries on
        assert await worker.wait_for(await worker.schedule_task("later"), timeout=10) is None
