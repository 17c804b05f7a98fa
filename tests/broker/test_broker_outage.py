"""With no broker to reach, due distributed tasks wait SCHEDULED, say why, and are
handed back on stop: nothing is lost.  Needs no RabbitMQ (a closed loopback port)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from asched import Scheduler, TaskLifecycle

UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/"


async def test_an_unreachable_broker_holds_tasks_with_a_reason_and_loses_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="asched.broker.link")
    scheduler = Scheduler(broker=UNREACHABLE, broker_prefix="asched-outage-test")

    @scheduler.task("render", executor="distributed")
    async def render(video: str) -> str:
        raise AssertionError("runs on a broker worker, never here")

    async with scheduler:
        task_id = await scheduler.schedule_task("render", {"video": "v1"})
        deadline = time.monotonic() + 5
        while (await scheduler.get_task(task_id)).wait_reason != "broker unavailable":
            assert time.monotonic() < deadline, "the task never said why it waits"
            await asyncio.sleep(0.02)
        assert await scheduler.get_task_status(task_id) is TaskLifecycle.SCHEDULED
        await asyncio.sleep(0.5)  # long enough to see whether reconnecting spins
        await scheduler.stop(grace_s=0)
    attempts = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(attempts) in range(1, 6), "reconnects back off instead of spinning"
    assert all("guest:guest" not in r.getMessage() for r in caplog.records)
    assert (await scheduler.get_task(task_id)).lifecycle is TaskLifecycle.QUEUED


async def test_a_task_sent_to_a_distributed_executor_this_scheduler_lacks_fails_clearly() -> None:
    from asched.errors import TaskFailedError

    scheduler = Scheduler()

    @scheduler.task("resize")
    def resize(size: int) -> int:
        return size

    async with scheduler:
        task_id = await scheduler.schedule_task("resize", {"size": 1}, executor="distributed")
        with pytest.raises(TaskFailedError, match="no 'distributed' executor"):
            await scheduler.wait_for(task_id, timeout=5)
