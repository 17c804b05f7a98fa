"""What the Redis store adds to the Store contract: its URL, server time, signing,
the payload limit, retention, and telling when Redis lost its data."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from redis_service import RedisService

from asched import ConfigError, Scheduler, TaskLifecycle, TaskValidationError
from asched.errors import StoreCorruptError
from asched.model import Task
from asched.stores import open_store
from asched.stores.redis import RedisStore

L = TaskLifecycle
KEY = "k" * 32


def _task(task_id: str, due_s: float = 1_000.0, data: bytes = b'{"n":1}') -> Task:
    task = Task(task_id, "job", data, created_s=due_s, due_s=due_s)
    task.transition(L.QUEUED, due_s, None)
    return task


@pytest.fixture
async def opened(redis_url: str) -> AsyncIterator[list[RedisStore]]:
    """Stores on the test's prefix, opened through ``open_store``; closed at the end."""
    stores: list[RedisStore] = []
    yield stores
    for store in stores:
        await store.close()


async def _open(stores: list[RedisStore], url: str) -> RedisStore:
    store = open_store(url)
    assert isinstance(store, RedisStore)
    await store.open()
    stores.append(store)
    return store


def test_the_url_names_the_options_and_keeps_the_password_out_of_messages() -> None:
    store = open_store("redis://app:s3cret@127.0.0.1:1/2?prefix=bot&clock=caller&result_ttl_s=60")
    assert isinstance(store, RedisStore)
    assert (store.options.prefix, store.options.clock, store.options.result_ttl_s) == (
        "bot",
        "caller",
        60.0,
    )
    assert store.keys.task("t1") == "{bot}:t:t1"
    assert "s3cret" not in repr(store)
    assert isinstance(open_store("rediss://127.0.0.1:1/0"), RedisStore)
    assert RedisStore.from_url("redis://127.0.0.1:1/0").options.prefix == "asched"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("prefix=a{b}", "prefix"),
        ("clock=local", "clock"),
        ("result_ttl_s=0", "result_ttl_s"),
        ("max_payload_bytes=many", "max_payload_bytes"),
        ("signing_key_env=ASCHED_TEST_UNSET_VARIABLE", "signing_key_env"),
    ],
)
def test_a_bad_option_names_its_field(query: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        open_store(f"redis://127.0.0.1:1/0?{query}")
    assert caught.value.field == field


async def test_leases_are_timed_by_the_redis_server_clock(
    opened: list[RedisStore], redis_url: str, redis_service: RedisService
) -> None:
    store = await _open(opened, redis_url)  # clock=server is the default
    await store.insert([_task("a")])
    seconds, micros = redis_service.client().time()
    [lease] = await store.claim(["a"], "p1", now_s=0.0, lease_s=30)
    assert abs(lease.expires_s - (seconds + micros / 1e6 + 30)) < 5
    # A caller's clock far behind does not make a live lease look expired, or a dead one live.
    assert await store.claim(["a"], "p2", now_s=1e12, lease_s=30) == []


async def test_a_record_written_without_the_signing_key_is_refused(
    opened: list[RedisStore], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASCHED_TEST_KEY", KEY)
    signed = await _open(opened, f"{redis_url}&clock=caller&signing_key_env=ASCHED_TEST_KEY")
    intruder = await _open(opened, f"{redis_url}&clock=caller")
    await signed.insert([_task("mine")])
    await intruder.insert([_task("injected")])
    assert (await signed.get("mine")) is not None
    with pytest.raises(StoreCorruptError):
        await signed.get("injected")
    claimed = await signed.claim_due("p1", 2_000.0, 30, 10)
    assert [task.id for _, task in claimed] == ["mine"]
    assert signed.corrupt_rows == 2


async def test_a_payload_over_the_limit_is_refused(
    opened: list[RedisStore], redis_url: str
) -> None:
    store = await _open(opened, f"{redis_url}&max_payload_bytes=64")
    big = _task("big", data=orjson.dumps({"blob": "x" * 100}))
    with pytest.raises(TaskValidationError) as caught:
        await store.insert([_task("fine"), big])
    assert caught.value.field == "task_data"
    assert await store.get("fine") is None


async def test_finished_tasks_are_purged_after_result_ttl(
    opened: list[RedisStore], redis_url: str
) -> None:
    store = await _open(opened, f"{redis_url}&clock=caller&result_ttl_s=60")
    done, pending = _task("done"), _task("pending")
    await store.insert([done, pending])
    for state in (L.SCHEDULED, L.RUNNING, L.COMPLETED):
        done.transition(state, 1_001.0, None)
    await store.save([done])
    now_s = done.history[-1].at.timestamp()
    assert await store.sweep(now_s + 59) == 0
    assert await store.sweep(now_s + 1e10) == 1
    assert await store.get("done") is None
    assert await store.count_by_state() == {L.QUEUED: 1}
    assert [t.id for t in await store.list_tasks()] == ["pending"]


async def test_a_redis_that_lost_its_data_is_reported_loudly(
    opened: list[RedisStore],
    redis_url: str,
    redis_service: RedisService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = await _open(opened, f"{redis_url}&clock=caller")
    await store.insert([_task("a")])
    await store.claim(["a"], "p1", 1_000.0, 30)
    prefix = redis_url.rsplit("prefix=", 1)[1]
    client = redis_service.client()
    for key in client.scan_iter(match="{" + prefix + "}:*"):
        client.delete(key)
    with caplog.at_level(logging.CRITICAL, logger="asched.stores.redis.store"):
        assert await store.renew("p1", 1_001.0, 30) == ["a"]
    assert store.data_losses == 1
    assert "lost its data" in caplog.text
    await store.renew("p1", 1_002.0, 30)
    assert store.data_losses == 1  # said once, with a new marker set


async def test_the_store_reconnects_after_redis_restarts(tmp_path: Path) -> None:
    service = RedisService(tmp_path / "redis")
    service.start()
    store = RedisStore.from_url(f"{service.url}?prefix=app&clock=caller")
    try:
        await store.open()
        await store.insert([_task("before")])
        service.restart()  # SIGKILL, then back from the AOF
        await store.insert([_task("after")])
        assert {t.id for t in await store.load_unfinished()} == {"before", "after"}
        assert store.data_losses == 0
    finally:
        await store.close()
        service.stop()


async def test_a_scheduler_runs_tasks_on_redis_and_another_process_sees_them(
    redis_url: str,
) -> None:
    scheduler = Scheduler(store=redis_url, shared_store=True, lease_s=5)

    @scheduler.task("double")
    async def double(n: int) -> int:
        return 2 * n

    async with scheduler:
        ids = [await scheduler.schedule_task("double", {"n": n}) for n in range(20)]
        assert [await scheduler.wait_for(i, timeout=10) for i in ids] == [2 * n for n in range(20)]
    reader = Scheduler(store=redis_url, strict_task_types=False)
    async with reader:
        task = await reader.get_task(ids[7])
        assert (task.lifecycle, task.result) == (L.COMPLETED, 14)


def test_tests_never_touch_the_shared_redis(redis_service: RedisService) -> None:
    assert redis_service.port != 6379


async def test_claim_due_sends_only_changes_to_what_it_skips_and_recovers_a_lost_set(
    opened: list[RedisStore], redis_url: str, redis_service: RedisService
) -> None:
    store = await _open(opened, f"{redis_url}&clock=caller")
    await store.insert([_task(f"t{i}", due_s=1_000.0 + i) for i in range(6)])
    skip = {"t0", "t1", "t2"}
    [(first, _)] = await store.claim_due("p1", 2_000.0, 30, 1, exclude=skip)
    assert first.task_id == "t3"
    skip = {"t1", "t2", "t4"}  # t0 no longer skipped, t4 now is
    [(second, _)] = await store.claim_due("p1", 2_000.0, 30, 1, exclude=skip)
    assert second.task_id == "t0"
    redis_service.client().delete(store.keys.base + ":x:p1")  # e.g. expired, or Redis restarted
    found = await store.claim_due("p1", 2_000.0, 30, 10, exclude=skip)
    assert [task.id for _, task in found] == ["t5"]
