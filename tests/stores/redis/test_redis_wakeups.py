"""Workers on Redis learn of other processes' writes from a pub/sub channel, not by polling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from asched import Scheduler
from asched.model import Task, TaskLifecycle
from asched.stores import open_store
from asched.stores.redis import RedisStore


def _task(task_id: str) -> Task:
    task = Task(task_id, "job", b"{}", created_s=1_000.0, due_s=1_000.0)
    task.transition(TaskLifecycle.QUEUED, 1_000.0, None)
    return task


@pytest.fixture
async def two_stores(redis_url: str) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    stores = (open_store(redis_url), open_store(redis_url))
    assert isinstance(stores[0], RedisStore) and isinstance(stores[1], RedisStore)
    for store in stores:
        await store.open()
    yield stores[0], stores[1]
    for store in stores:
        await store.close()


async def _flag_raised(store: RedisStore, within_s: float = 5.0) -> bool:
    """Read the flag until it is up (a published message takes a moment to arrive)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while loop.time() < deadline:
        if await store.changed_elsewhere():
            return True
        await asyncio.sleep(0.01)
    return False


async def test_another_stores_write_raises_the_flag_and_an_own_write_does_not(
    two_stores: tuple[RedisStore, RedisStore],
) -> None:
    watcher, writer = two_stores
    assert await watcher.changed_elsewhere() is True  # anything before listening is unknown
    assert await watcher.changed_elsewhere() is False
    await watcher.insert([_task("own")])
    await writer.insert([_task("theirs")])
    assert await _flag_raised(watcher)
    assert await watcher.changed_elsewhere() is False  # down again once read
    await watcher.insert([_task("own-2")])
    await writer.save([])  # nothing written: nothing published
    assert not await _flag_raised(watcher, within_s=0.3)


async def test_a_worker_runs_a_producers_task_at_once_with_polling_all_but_off(
    redis_url: str,
) -> None:
    ran = asyncio.Event()
    worker = Scheduler(store=redis_url, poll_interval_s=3600)

    @worker.task("job")
    async def job() -> None:
        ran.set()

    producer = Scheduler(store=redis_url, poll_interval_s=3600, strict_task_types=False)
    async with worker, producer:
        await producer.schedule_task("job")
        await asyncio.wait_for(ran.wait(), timeout=10)
