"""The operator commands work against a Redis store."""

from __future__ import annotations

import asyncio

import pytest

from asched import Scheduler, TaskLifecycle
from asched.cli import main
from asched.stores.redis import RedisStore


async def _prepare(url: str) -> tuple[str, str]:
    scheduler = Scheduler(url, strict_task_types=False)
    async with scheduler:
        later = await scheduler.schedule_task("render", delay=3600)
        other = await scheduler.schedule_task("upload", delay=7200)
    return later, other


async def _state(url: str, task_id: str) -> TaskLifecycle:
    store = RedisStore.from_url(url)
    await store.open()
    try:
        task = await store.get(task_id)
    finally:
        await store.close()
    assert task is not None
    return task.lifecycle


def test_list_status_and_cancel_on_redis(
    redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    later, other = asyncio.run(_prepare(redis_url))
    assert main(["list", "--store", redis_url]) == 0
    listed = capsys.readouterr().out
    assert later in listed and other in listed
    assert main(["status", other, "--store", redis_url]) == 0
    assert "upload" in capsys.readouterr().out
    assert main(["cancel", later, "--store", redis_url, "--reason", "not needed"]) == 0
    assert f"cancelled {later}" in capsys.readouterr().out
    assert asyncio.run(_state(redis_url, later)) is TaskLifecycle.CANCELLED
    assert asyncio.run(_state(redis_url, other)) is TaskLifecycle.QUEUED
