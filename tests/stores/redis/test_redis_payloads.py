"""The Redis store keeps payloads apart from state: a save sends and writes the
state only.  The task data sits in its own field of the task's hash, written at
insert; the result in another, written when the task completes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
import redis
from redis_service import RedisService

from asched import Scheduler, TaskLifecycle, TaskPriority
from asched.errors import StoreCorruptError
from asched.model import Task
from asched.stores import open_store
from asched.stores.redis import RedisStore
from asched.testing import FakeClock

L = TaskLifecycle
PAYLOAD_BYTES = 500_000
KEY = "k" * 32


def received(client: redis.Redis) -> int:
    """Bytes the Redis server has read from all its clients."""
    return int(client.info("stats")["total_net_input_bytes"])


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not await check():
        assert loop.time() < deadline, "the change never reached the store"
        await asyncio.sleep(0.005)


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    opened = open_store(f"{redis_url}&clock=caller")
    assert isinstance(opened, RedisStore)
    await opened.open()
    yield opened
    await opened.close()


def queued(task_id: str, data: bytes = b'{"n":1}') -> Task:
    task = Task(task_id, "job", data, created_s=1_000.0)
    task.transition(L.QUEUED, 1_000.0, None)
    return task


async def test_state_changes_send_no_payload(
    redis_url: str,
    redis_service: RedisService,
    clock: FakeClock,
    make_scheduler: Callable[..., Scheduler],
) -> None:
    store = open_store(redis_url)
    s = make_scheduler(store=store)
    result_text = "r" * 300_000

    @s.task("render")
    async def render(blob: str) -> dict[str, str]:
        return {"echo": blob[:10], "big": result_text}

    with redis_service.client() as client:
        async with s:
            blob = "x" * PAYLOAD_BYTES
            tid = await s.schedule_task("render", {"blob": blob}, delay=60)

            async def stored(check: Callable[[Task], bool]) -> bool:
                task = await store.get(tid)
                return task is not None and check(task)

            before = received(client)
            for priority in (TaskPriority.HIGH, TaskPriority.LOW, TaskPriority.CRITICAL):
                assert await s.pause_task(tid)
                await until(lambda: stored(lambda t: t.lifecycle is L.PAUSED))
                assert await s.set_priority(tid, priority)
                await until(lambda p=priority: stored(lambda t: t.priority is p))  # type: ignore[misc]
                assert await s.resume_task(tid)
                await until(lambda: stored(lambda t: t.lifecycle is not L.PAUSED))
            sent = received(client) - before
            assert sent < PAYLOAD_BYTES / 4, f"9 saves sent {sent} bytes"

            before = received(client)
            await clock.advance(60)
            assert (await s.wait_for(tid, timeout=10))["echo"] == "x" * 10
            await until(lambda: stored(lambda t: t.lifecycle is L.COMPLETED))
            assert received(client) - before < len(result_text) + PAYLOAD_BYTES / 4

            for task in (await s.get_task(tid), await store.get(tid), *await store.list_tasks()):
                assert task.data == {"blob": blob}
                assert task.result == {"echo": "x" * 10, "big": result_text}


async def test_a_task_an_older_asched_stored_whole_keeps_its_data(
    store: RedisStore, redis_service: RedisService
) -> None:
    task = queued("old", orjson.dumps({"keep": "me"}))
    await store.insert([task])
    key = store.keys.task("old")
    with redis_service.client() as client:  # as asched wrote it before: all in r
        client.hdel(key, "D", "hd", "v")
        client.hset(key, "r", task.to_json())
    assert (await store.get("old")).data == {"keep": "me"}  # type: ignore[union-attr]
    task.transition(L.SCHEDULED, 1_001.0, None)
    task.priority = TaskPriority.HIGH
    assert await store.save([task]) == []
    with redis_service.client() as client:
        assert client.hget(key, "v") == b"2"
        assert orjson.loads(client.hget(key, "D")) == {"keep": "me"}  # type: ignore[arg-type]
    again = await store.get("old")
    assert again is not None and again.data == {"keep": "me"}
    assert (again.lifecycle, again.priority) == (L.SCHEDULED, TaskPriority.HIGH)


async def test_signed_data_cannot_be_moved_to_another_task(
    redis_url: str, redis_service: RedisService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASCHED_TEST_KEY", KEY)
    store = open_store(f"{redis_url}&clock=caller&signing_key_env=ASCHED_TEST_KEY")
    assert isinstance(store, RedisStore)
    await store.open()
    try:
        await store.insert([queued("a", b'{"who":"a"}'), queued("b", b'{"who":"b"}')])
        assert (await store.get("a")).data == {"who": "a"}  # type: ignore[union-attr]
        with redis_service.client() as client:
            data, mac = client.hmget(store.keys.task("b"), "D", "hd")
            client.hset(store.keys.task("a"), mapping={"D": data, "hd": mac})  # type: ignore[dict-item]
        with pytest.raises(StoreCorruptError):
            await store.get("a")
        assert (await store.get("b")).data == {"who": "b"}  # type: ignore[union-attr]
    finally:
        await store.close()
