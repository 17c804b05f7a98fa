"""The Store contract: one suite, run against every store.

A new backend joins by adding one entry to ``STORES``.  Every test goes
through the public Store methods only, and is written so it holds both for a
store that shares the scheduler's objects (memory: ``save`` is a no-op) and
for one that copies them (SQLite): mutate, ``save``, then ``get``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from itertools import count
from typing import Any

import orjson
import pytest
from redis_checks import check_redis_indexes

from asched import ConfigError, TaskLifecycle, TaskMetadata, TaskPriority, TaskValidationError
from asched.model import Task
from asched.stores import MemoryStore, Store
from asched.stores.base import Lease
from asched.stores.redis import RedisStore
from asched.stores.sqlite.store import SQLiteStore

L = TaskLifecycle
T0 = 1_800_000_000.0


async def _memory(request: pytest.FixtureRequest) -> tuple[Store, Callable[[], Awaitable[None]]]:
    async def check() -> None:
        return None

    return MemoryStore(), check


async def _sqlite(request: pytest.FixtureRequest) -> tuple[Store, Callable[[], Awaitable[None]]]:
    path = request.getfixturevalue("tmp_path") / "contract.db"

    async def check() -> None:
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()

    return SQLiteStore(path), check


async def _redis(request: pytest.FixtureRequest) -> tuple[Store, Callable[[], Awaitable[None]]]:
    url = request.getfixturevalue("redis_url")  # a private redis-server, a prefix per test

    async def check() -> None:
        check_redis_indexes(url)

    return RedisStore.from_url(url + "&clock=caller"), check


#: name -> factory returning (an unopened store, a check to run after it is closed).
STORES: dict[
    str, Callable[[pytest.FixtureRequest], Awaitable[tuple[Store, Callable[[], Awaitable[None]]]]]
] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
}


@pytest.fixture(params=sorted(STORES))
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    backend, check = await STORES[request.param](request)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
    await check()


_ids = count(1)


def make_task(
    task_type: str = "job",
    *,
    due_s: float = T0,
    priority: TaskPriority = TaskPriority.MEDIUM,
    state: TaskLifecycle = L.QUEUED,
    task_id: str | None = None,
    idempotency_key: str | None = None,
) -> Task:
    task = Task(
        task_id or f"task-{next(_ids)}",
        task_type,
        orjson.dumps({"n": 1}),
        priority,
        created_s=T0,
        due_s=due_s,
        idempotency_key=idempotency_key,
    )
    for target in _PATH_TO[state]:
        task.transition(target, T0 + 1, None)
    return task


_PATH_TO: dict[TaskLifecycle, tuple[TaskLifecycle, ...]] = {
    L.CREATED: (),
    L.QUEUED: (L.QUEUED,),
    L.SCHEDULED: (L.QUEUED, L.SCHEDULED),
    L.PAUSED: (L.QUEUED, L.PAUSED),
    L.RUNNING: (L.QUEUED, L.SCHEDULED, L.RUNNING),
    L.RETRYING: (L.QUEUED, L.SCHEDULED, L.RUNNING, L.RETRYING),
    L.COMPLETED: (L.QUEUED, L.SCHEDULED, L.RUNNING, L.COMPLETED),
    L.FAILED: (L.QUEUED, L.SCHEDULED, L.RUNNING, L.FAILED),
    L.CANCELLED: (L.QUEUED, L.CANCELLED),
}


def full_task() -> Task:
    """A task with every field set to something other than its default."""
    task = Task(
        "full-1",
        "content_creation",
        orjson.dumps({"channel_id": "c1", "nested": {"list": [1, 2.5, None, "ñ"]}}),
        TaskPriority.HIGH,
        created_s=T0 + 0.25,
        due_s=T0 + 3600.5,
        executor_type="thread",
        max_retries=5,
        backoff_factor=1.5,
        timeout_s=12.5,
        dependencies=("dep-a", "dep-b"),
        concurrency_key="channel:c1",
        idempotency_key="video-42",
        metadata=TaskMetadata(
            created_at=datetime.fromtimestamp(T0, UTC),
            created_by="bot",
            source_ip="10.0.0.7",
            source_component="planner",
            tags=["video", "tech"],
            audit_trail=[{"event": "created", "by": "bot"}],
        ),
    )
    for i, (target, reason) in enumerate(
        [
            (L.QUEUED, None),
            (L.SCHEDULED, None),
            (L.RUNNING, None),
            (L.RETRYING, "attempt 1 failed: boom"),
            (L.RUNNING, None),
            (L.COMPLETED, "done"),
        ]
    ):
        task.transition(target, T0 + 10 + i, reason)
    task.retries = 1
    task.started_s = T0 + 14.5
    task.finished_s = T0 + 15.75
    task.result = {"video_id": "v9", "views": [1, 2, 3], "ok": True}
    task.error = "RuntimeError: boom"
    task.user_paused = True
    task.wait_reason = "waiting for a rate-limit slot"
    return task


async def stored(store: Store, task_id: str) -> Task:
    task = await store.get(task_id)
    assert task is not None, task_id
    return task


# -- insert and get --------------------------------------------------------------------


async def test_insert_then_get_round_trips_every_field(store: Store) -> None:
    task = full_task()
    expected = task.to_dict()
    await store.insert([task])
    got = await stored(store, "full-1")
    assert got.to_dict() == expected
    assert got.history == task.history
    assert got.metadata == task.metadata
    assert got.data_json == task.data_json or got.data == task.data


async def test_get_unknown_id_is_none(store: Store) -> None:
    assert await store.get("nope") is None


async def test_empty_batches_are_no_ops(store: Store) -> None:
    await store.insert([])
    await store.save([])
    assert await store.count_by_state() == {}


@pytest.mark.parametrize(
    ("field", "batch"),
    [
        ("task_id", lambda: [make_task(task_id="a"), make_task(), make_task(task_id="a")]),
        (
            "idempotency_key",
            lambda: [make_task(idempotency_key="k"), make_task(idempotency_key="k")],
        ),
    ],
    ids=["duplicate-id", "duplicate-key"],
)
async def test_a_batch_with_an_internal_duplicate_stores_nothing(
    store: Store, field: str, batch: Callable[[], list[Task]]
) -> None:
    tasks = batch()
    with pytest.raises(TaskValidationError) as caught:
        await store.insert(tasks)
    assert caught.value.field == field
    for task in tasks:
        assert await store.get(task.id) is None
    assert await store.count_by_state() == {}


@pytest.mark.parametrize(
    ("field", "clash"),
    [
        ("task_id", lambda: make_task(task_id="taken")),
        ("idempotency_key", lambda: make_task(idempotency_key="taken-key")),
    ],
    ids=["existing-id", "existing-key"],
)
async def test_a_batch_clashing_with_a_stored_task_stores_nothing(
    store: Store, field: str, clash: Callable[[], Task]
) -> None:
    original = make_task(task_id="taken", idempotency_key="taken-key")
    await store.insert([original])
    fresh = make_task()
    with pytest.raises(TaskValidationError) as caught:
        await store.insert([fresh, clash()])
    assert caught.value.field == field
    assert await store.get(fresh.id) is None
    assert (await stored(store, "taken")).to_dict() == original.to_dict()
    assert await store.count_by_state() == {L.QUEUED: 1}


async def test_concurrent_inserts_fail_only_the_clashing_call(store: Store) -> None:
    await store.insert([make_task(task_id="x")])
    good = [[make_task(), make_task()] for _ in range(5)]
    bad = [make_task(), make_task(task_id="x")]
    outcomes = await asyncio.gather(
        *(store.insert(batch) for batch in [*good[:2], bad, *good[2:]]), return_exceptions=True
    )
    assert [type(o).__name__ for o in outcomes] == ["NoneType"] * 2 + ["TaskValidationError"] + [
        "NoneType"
    ] * 3
    assert isinstance(outcomes[2], TaskValidationError)
    assert (outcomes[2].field, outcomes[2].value) == ("task_id", "x")
    for batch in good:
        for task in batch:
            assert await store.get(task.id) is not None
    assert await store.get(bad[0].id) is None


async def test_find_by_idempotency_key(store: Store) -> None:
    keyed = make_task(idempotency_key="upload:c1:2024-05-01")
    await store.insert([make_task(), keyed])
    assert await store.find_by_idempotency_key("upload:c1:2024-05-01") == keyed.id
    assert await store.find_by_idempotency_key("other") is None


# -- save ------------------------------------------------------------------------------


async def test_save_persists_the_current_state(store: Store) -> None:
    task = make_task(state=L.SCHEDULED)
    await store.insert([task])
    task.transition(L.RUNNING, T0 + 5, None)
    task.started_s = T0 + 5
    task.transition(L.COMPLETED, T0 + 6, "finished")
    task.finished_s = T0 + 6
    task.result = {"url": "https://example.test/v/1"}
    task.priority = TaskPriority.CRITICAL
    task.due_s = T0 + 2
    await store.save([task])
    got = await stored(store, task.id)
    assert got.to_dict() == task.to_dict()
    assert got.lifecycle is L.COMPLETED
    assert [t.to_state for t in got.history][-2:] == [L.RUNNING, L.COMPLETED]
    assert await store.list_tasks(status=L.COMPLETED) != []
    assert await store.list_tasks(status=L.SCHEDULED) == []


async def test_saving_many_tasks_at_once(store: Store) -> None:
    tasks = [make_task(state=L.SCHEDULED) for _ in range(50)]
    await store.insert(tasks)
    for task in tasks[::2]:
        task.transition(L.RUNNING, T0 + 3, None)
    await asyncio.gather(store.save(tasks[::2]), store.save(tasks[1::2]))
    assert await store.count_by_state() == {L.SCHEDULED: 25, L.RUNNING: 25}


# -- queries ---------------------------------------------------------------------------


@pytest.fixture
async def mixed(store: Store) -> list[Task]:
    tasks = [
        make_task("video", due_s=T0 + 30, state=L.SCHEDULED),
        make_task("video", due_s=T0 + 10, state=L.COMPLETED),
        make_task("upload", due_s=T0 + 20, state=L.SCHEDULED, priority=TaskPriority.LOW),
        make_task("upload", due_s=T0 + 20, state=L.SCHEDULED, priority=TaskPriority.HIGH),
        make_task("video", due_s=T0 + 5, state=L.PAUSED),
        make_task("video", due_s=T0 + 40, state=L.FAILED),
        make_task("upload", due_s=T0 + 1, state=L.CANCELLED),
        make_task("video", due_s=T0 + 50, state=L.RUNNING),
        make_task("upload", due_s=T0 + 60, state=L.RETRYING),
    ]
    await store.insert(tasks[:4])
    await store.insert(tasks[4:])
    return tasks


def ids(tasks: list[Task]) -> list[str]:
    return [t.id for t in tasks]


async def test_list_tasks_is_ordered_by_due_time_then_priority(
    store: Store, mixed: list[Task]
) -> None:
    order = [6, 4, 1, 3, 2, 0, 5, 7, 8]
    assert ids(await store.list_tasks()) == [mixed[i].id for i in order]


async def test_list_tasks_filters_by_status_type_and_limit(store: Store, mixed: list[Task]) -> None:
    assert ids(await store.list_tasks(status=L.SCHEDULED)) == ids([mixed[3], mixed[2], mixed[0]])
    assert ids(await store.list_tasks(task_type="video")) == ids(
        [mixed[4], mixed[1], mixed[0], mixed[5], mixed[7]]
    )
    both = await store.list_tasks(status=L.SCHEDULED, task_type="upload")
    assert ids(both) == ids([mixed[3], mixed[2]])
    assert ids(await store.list_tasks(limit=2)) == ids([mixed[6], mixed[4]])
    assert ids(await store.list_tasks(status=L.SCHEDULED, limit=1)) == [mixed[3].id]
    assert await store.list_tasks(limit=0) == []
    assert await store.list_tasks(task_type="nothing") == []


async def test_load_unfinished_returns_exactly_the_non_terminal_tasks(
    store: Store, mixed: list[Task]
) -> None:
    unfinished = {t.id for t in mixed if not t.is_terminal}
    loaded = await store.load_unfinished()
    assert len(loaded) == len(unfinished)
    assert {t.id for t in loaded} == unfinished
    by_id = {t.id: t for t in mixed}
    for task in loaded:
        assert task.to_dict() == by_id[task.id].to_dict()


async def test_count_by_state(store: Store, mixed: list[Task]) -> None:
    expected: dict[TaskLifecycle, int] = {}
    for task in mixed:
        expected[task.lifecycle] = expected.get(task.lifecycle, 0) + 1
    assert await store.count_by_state() == expected


async def test_queries_reflect_saves(store: Store, mixed: list[Task]) -> None:
    running = mixed[7]
    running.transition(L.COMPLETED, T0 + 99, None)
    await store.save([running])
    assert running.id not in {t.id for t in await store.load_unfinished()}
    assert running.id in ids(await store.list_tasks(status=L.COMPLETED))
    counts = await store.count_by_state()
    assert counts[L.COMPLETED] == 2
    assert L.RUNNING not in counts


async def test_schedule_records_are_saved_replaced_and_deleted(store: Store) -> None:
    first = {"version": 1, "id": "daily", "trigger": {"cron": "0 9 * * *"}, "fired": 0}
    other = {"version": 1, "id": "hourly", "trigger": {"interval_s": 3600.0}, "fired": 2}
    await store.save_schedules([first, other])
    updated = {**first, "fired": 1, "next_fire_s": T0 + 86400}
    await store.save_schedules([updated])
    assert sorted(await store.load_schedules(), key=lambda r: r["id"]) == [updated, other]
    await store.delete_schedules(["hourly", "unknown"])
    assert await store.load_schedules() == [updated]


async def test_store_flags(store: Store) -> None:
    flags: dict[str, Any] = {"durable": store.durable, "shares_objects": store.shares_objects}
    assert flags in (
        {"durable": False, "shares_objects": True},
        {"durable": True, "shares_objects": False},
    )


# -- leases ------------------------------------------------------------------------------

LEASE_S = 30.0


async def claim_one(store: Store, task_id: str, owner: str, now_s: float = T0) -> Lease:
    granted = await store.claim([task_id], owner, now_s, LEASE_S)
    assert [lease.task_id for lease in granted] == [task_id], (owner, task_id)
    return granted[0]


async def test_claim_grants_free_tasks_and_refuses_ones_a_live_owner_holds(store: Store) -> None:
    a, b, c = make_task(), make_task(state=L.SCHEDULED), make_task(state=L.PAUSED)
    await store.insert([a, b, c])
    granted = await store.claim([a.id, b.id, "unknown"], "p1", T0, LEASE_S)
    assert {(x.task_id, x.owner, x.token, x.expires_s) for x in granted} == {
        (a.id, "p1", 1, T0 + LEASE_S),
        (b.id, "p1", 1, T0 + LEASE_S),
    }
    later = T0 + LEASE_S - 0.001
    assert [x.task_id for x in await store.claim([a.id, b.id, c.id], "p2", later, LEASE_S)] == [
        c.id
    ]


async def test_an_expired_lease_goes_to_another_owner_with_a_higher_token(store: Store) -> None:
    task = make_task()
    await store.insert([task])
    first = await claim_one(store, task.id, "p1")
    second = await claim_one(store, task.id, "p2", T0 + LEASE_S)  # expires_s > now_s: no
    assert second.token > first.token
    assert await store.claim([task.id], "p1", T0 + LEASE_S + 1, LEASE_S) == []


async def test_claiming_again_as_the_same_owner_bumps_the_token(store: Store) -> None:
    task = make_task()
    await store.insert([task])
    first = await claim_one(store, task.id, "p1")
    again = await claim_one(store, task.id, "p1", T0 + 1)
    assert (again.token, again.expires_s) == (first.token + 1, T0 + 1 + LEASE_S)
    task.transition(L.SCHEDULED, T0 + 2, None)
    assert await store.save([task], {task.id: first}) == [task.id]
    assert await store.save([task], {task.id: again}) == []


async def test_terminal_tasks_are_never_claimed(store: Store) -> None:
    done = [make_task(state=s) for s in (L.COMPLETED, L.FAILED, L.CANCELLED)]
    await store.insert(done)
    assert await store.claim([t.id for t in done], "p1", T0, LEASE_S) == []
    assert await store.claim_due("p1", T0 + 99, LEASE_S, 10) == []
    assert await store.next_due_s("p1", T0) is None


async def test_insert_leaves_tasks_unleased(store: Store) -> None:
    task = make_task()
    await store.insert([task])
    assert (await claim_one(store, task.id, "p1")).token == 1
    assert await store.renew("p2", T0, LEASE_S) == []


async def test_claim_due_takes_the_best_due_free_tasks(store: Store) -> None:
    p = TaskPriority
    tasks = {
        "late-high": make_task(due_s=T0 + 5, priority=p.HIGH),
        "early-low": make_task(due_s=T0 + 1, priority=p.LOW),
        "early-high": make_task(due_s=T0 + 2, priority=p.HIGH, state=L.SCHEDULED),
        "critical": make_task(due_s=T0 + 9, priority=p.CRITICAL, state=L.RETRYING),
        "medium": make_task(due_s=T0 + 3),
        "future": make_task(due_s=T0 + 11, priority=p.CRITICAL),
        "paused": make_task(due_s=T0, priority=p.CRITICAL, state=L.PAUSED),
        "running": make_task(due_s=T0, priority=p.CRITICAL, state=L.RUNNING),
        "excluded": make_task(due_s=T0, priority=p.CRITICAL),
    }
    await store.insert(list(tasks.values()))
    await claim_one(store, tasks["running"].id, "other", T0 - LEASE_S + 20)  # until T0 + 20
    name = {t.id: n for n, t in tasks.items()}
    excluded = {tasks["excluded"].id}

    got = await store.claim_due("p1", T0 + 10, LEASE_S, 3, exclude=excluded)
    assert [name[lease.task_id] for lease, _ in got] == ["critical", "early-high", "late-high"]
    assert all(lease.task_id == task.id for lease, task in got)
    assert {(lease.owner, lease.expires_s) for lease, _ in got} == {("p1", T0 + 10 + LEASE_S)}
    rest = await store.claim_due("p2", T0 + 10, LEASE_S, 10, exclude=excluded)
    assert [name[lease.task_id] for lease, _ in rest] == ["medium", "early-low"]
    assert await store.claim_due("p2", T0 + 10, LEASE_S, 10, exclude=excluded) == []
    assert await store.claim_due("p3", T0 + 10, LEASE_S, 0) == []


async def test_claim_due_takes_only_the_types_asked_for(store: Store) -> None:
    kinds = ("render", "upload", "announce")
    await store.insert([make_task(kinds[i % 3], due_s=T0 + i) for i in range(6)])
    got = await store.claim_due("p1", T0 + 10, LEASE_S, 10, task_types=["render", "announce"])
    assert [task.type for _, task in got] == ["render", "announce", "render", "announce"]
    assert await store.claim_due("p1", T0 + 10, LEASE_S, 10, task_types=[]) == []
    assert await store.claim_due("p1", T0 + 10, LEASE_S, 10, task_types=["render"]) == []
    rest = await store.claim_due("p2", T0 + 10, LEASE_S, 10)
    assert [task.type for _, task in rest] == ["upload", "upload"]


async def test_claim_due_takes_a_running_task_only_once_its_lease_expired(store: Store) -> None:
    task = make_task(state=L.RUNNING)
    await store.insert([task])
    held = await claim_one(store, task.id, "dead")
    assert await store.claim_due("p2", T0 + LEASE_S - 1, LEASE_S, 10) == []
    [(lease, got)] = await store.claim_due("p2", T0 + LEASE_S, LEASE_S, 10)
    assert (lease.task_id, lease.token) == (task.id, held.token + 1)
    assert got.to_dict() == task.to_dict()


async def test_claim_due_skips_what_the_owner_already_holds(store: Store) -> None:
    task = make_task()
    await store.insert([task])
    held = await claim_one(store, task.id, "p1")
    assert await store.claim_due("p1", T0 + 1, LEASE_S, 10) == []
    [(again, _)] = await store.claim_due("p1", T0 + LEASE_S, LEASE_S, 10)
    assert again.token == held.token + 1


async def test_next_due_s(store: Store) -> None:
    assert await store.next_due_s("p1", T0) is None
    soon, later, paused = make_task(due_s=T0 + 50), make_task(due_s=T0 + 90), make_task()
    paused.transition(L.PAUSED, T0, None)
    await store.insert([later, soon, paused])
    assert await store.next_due_s("p1", T0) == T0 + 50
    await claim_one(store, soon.id, "p2")  # held by another owner until T0 + 30
    assert await store.next_due_s("p1", T0) == T0 + 50  # due after its lease ends
    await claim_one(store, soon.id, "p2", T0 + 40)  # renewed past its due time
    assert await store.next_due_s("p1", T0 + 40) == T0 + 40 + LEASE_S
    assert await store.next_due_s("p2", T0 + 40) == T0 + 90  # its own lease: not counted
    await claim_one(store, later.id, "p1", T0 + 40)
    assert await store.next_due_s("p1", T0 + 40) == T0 + 70
    assert await store.next_due_s("p1", T0 + 200) == T0 + 50  # every lease expired


async def test_renew_extends_valid_leases_and_reports_lost_ones(store: Store) -> None:
    kept, taken, expired = make_task(), make_task(), make_task()
    await store.insert([kept, taken, expired])
    await store.claim([kept.id, expired.id], "p1", T0, LEASE_S)
    old = await claim_one(store, taken.id, "p1", T0 - 10)
    await claim_one(store, taken.id, "p2", T0 + 25)  # p1's lease ran out at T0 + 20
    assert sorted(await store.renew("p1", T0 + 29, LEASE_S)) == sorted([taken.id])
    assert await store.claim([kept.id, expired.id], "p2", T0 + 31, LEASE_S) == []
    assert await store.renew("p1", T0 + 29 + LEASE_S, 5) == sorted([kept.id, expired.id])
    assert await store.renew("p1", T0 + 100, LEASE_S) == []
    taken.transition(L.SCHEDULED, T0 + 100, None)
    assert await store.save([taken], {taken.id: old}) == [taken.id]


async def test_an_expired_lease_renew_reports_can_no_longer_write(store: Store) -> None:
    task = make_task()
    await store.insert([task])
    lease = await claim_one(store, task.id, "p1")
    assert await store.renew("p1", T0 + LEASE_S, LEASE_S) == [task.id]
    late = task.copy()
    late.transition(L.SCHEDULED, T0 + 31, None)
    assert await store.save([late], {task.id: lease}) == [task.id]
    assert (await stored(store, task.id)).lifecycle is L.QUEUED


async def test_release_hands_the_task_back_and_ignores_stale_leases(store: Store) -> None:
    task = make_task(state=L.SCHEDULED)
    await store.insert([task])
    stale = await claim_one(store, task.id, "p1")
    current = await claim_one(store, task.id, "p1", T0 + 1)
    await store.release([stale])
    assert await store.claim([task.id], "p2", T0 + 2, LEASE_S) == []
    before = (await stored(store, task.id)).to_dict()
    await store.release([current])
    assert (await stored(store, task.id)).to_dict() == before
    assert await store.renew("p1", T0 + 2, LEASE_S) == []
    assert (await claim_one(store, task.id, "p2", T0 + 2)).token == current.token + 1
    task.transition(L.RUNNING, T0 + 3, None)
    assert await store.save([task], {task.id: current}) == [task.id]


async def test_release_of_many_leases_frees_only_those_still_held(store: Store) -> None:
    tasks = [make_task(state=L.SCHEDULED) for _ in range(5)]
    await store.insert(tasks)
    first = await store.claim([t.id for t in tasks], "p1", T0, LEASE_S)
    assert len(first) == 5
    again = [await claim_one(store, t.id, "p1", T0 + 1) for t in tasks[:2]]
    await store.release(first)  # stale for the first two, current for the rest
    freed = await store.claim([t.id for t in tasks], "p2", T0 + 2, LEASE_S)
    assert {lease.task_id for lease in freed} == {t.id for t in tasks[2:]}
    await store.release(again)
    taken = await store.claim([t.id for t in tasks], "p3", T0 + 3, LEASE_S)
    assert {lease.task_id for lease in taken} == {t.id for t in tasks[:2]}


async def test_a_fenced_save_by_the_holder_lands_and_finishing_ends_the_lease(
    store: Store,
) -> None:
    task = make_task(state=L.SCHEDULED)
    await store.insert([task])
    lease = await claim_one(store, task.id, "p1")
    task.transition(L.RUNNING, T0 + 2, None)
    assert await store.save([task], {task.id: lease}) == []
    assert (await stored(store, task.id)).lifecycle is L.RUNNING
    assert await store.claim([task.id], "p2", T0 + 3, LEASE_S) == []  # still held
    task.transition(L.COMPLETED, T0 + 4, "done")
    task.result = {"ok": True}
    assert await store.save([task], {task.id: lease}) == []
    got = await stored(store, task.id)
    assert got.to_dict() == task.to_dict()
    assert await store.renew("p1", T0 + 5, LEASE_S) == []  # ended, not lost
    assert await store.save([task], {task.id: lease}) == [task.id]  # the lease is spent


async def test_handing_back_as_queued_ends_the_lease(store: Store) -> None:
    task = make_task(state=L.RUNNING)
    await store.insert([task])
    lease = await claim_one(store, task.id, "p1")
    task.transition(L.QUEUED, T0 + 2, "handed back")
    assert await store.save([task], {task.id: lease}) == []
    [(again, got)] = await store.claim_due("p2", T0 + 3, LEASE_S, 10)
    assert again.token == lease.token + 1
    assert got.history[-1].reason == "handed back"


async def test_a_stale_fenced_save_is_refused_reported_and_changes_nothing(
    store: Store,
) -> None:
    task = make_task(state=L.RUNNING)
    other = make_task(state=L.RUNNING)
    await store.insert([task, other])
    old = await claim_one(store, task.id, "dead")
    new = await claim_one(store, task.id, "p2", T0 + LEASE_S)
    held = await claim_one(store, other.id, "dead")
    before = (await stored(store, task.id)).to_dict()
    late = (await stored(store, task.id)).copy()  # the dead owner's own copy
    late.transition(L.COMPLETED, T0 + 40, "late")
    late.result = "stale"
    other.transition(L.COMPLETED, T0 + 40, None)
    refused = await store.save([late, other], {task.id: old, other.id: held})
    assert refused == [task.id]
    assert (await stored(store, task.id)).to_dict() == before
    assert (await stored(store, other.id)).lifecycle is L.COMPLETED
    assert await store.claim([task.id], "p3", T0 + 41, LEASE_S) == []  # p2 still holds it
    assert await store.renew("p2", T0 + 41, LEASE_S) == []
    current = (await stored(store, task.id)).copy()
    current.transition(L.COMPLETED, T0 + 42, None)
    assert await store.save([current], {task.id: new}) == []
    assert (await stored(store, task.id)).lifecycle is L.COMPLETED


async def test_unfenced_and_fenced_saves_of_many_callers_at_once(store: Store) -> None:
    tasks = [make_task(state=L.SCHEDULED) for _ in range(40)]
    await store.insert(tasks)
    leases = {x.task_id: x for x in await store.claim([t.id for t in tasks[:20]], "p1", T0, 30)}
    stale = {t.id: Lease(t.id, "p1", 99, T0 + 30) for t in tasks[10:20]}
    copies = [t.copy() for t in tasks[10:20]]  # the stale writer's own objects
    for task in (*tasks[:10], *copies, *tasks[20:]):
        task.transition(L.RUNNING, T0 + 1, None)
    results = await asyncio.gather(
        store.save(tasks[:10], leases),
        store.save(copies, stale),
        store.save(tasks[20:30]),
        store.save(tasks[30:], {}),
    )
    assert results[0] == [] and results[2] == [] and results[3] == []
    assert sorted(results[1]) == sorted(stale)
    counts = await store.count_by_state()
    assert counts == {L.RUNNING: 30, L.SCHEDULED: 10}


async def test_an_unfenced_finishing_save_ends_any_lease(store: Store) -> None:
    task = make_task(state=L.RUNNING)
    await store.insert([task])
    lease = await claim_one(store, task.id, "p1")
    cancel = task.copy()
    cancel.transition(L.CANCELLED, T0 + 1, "cancelled elsewhere")
    assert await store.save([cancel]) == []
    late = task.copy()
    late.transition(L.COMPLETED, T0 + 2, None)
    assert await store.save([late], {task.id: lease}) == [task.id]
    assert (await stored(store, task.id)).lifecycle is L.CANCELLED
    assert await store.renew("p1", T0 + 3, LEASE_S) == [task.id]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.claim(["x"], "", T0, LEASE_S), "owner"),
        (lambda s: s.claim(["x"], "p1", T0, 0), "lease_s"),
        (lambda s: s.claim_due("p1", T0, float("inf"), 5), "lease_s"),
        (lambda s: s.claim_due("p1", T0, LEASE_S, -1), "limit"),
        (lambda s: s.renew(None, T0, LEASE_S), "owner"),
        (lambda s: s.next_due_s(7, T0), "owner"),
    ],
)
async def test_bad_lease_arguments_name_the_field(
    store: Store, call: Callable[[Store], Awaitable[Any]], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        await call(store)
    assert caught.value.field == field


# -- finished tasks: never written again, purged by finish time and type -------------------


async def test_a_finished_task_is_never_written_again(store: Store) -> None:
    task = make_task(state=L.RUNNING, task_id="done")
    await store.insert([task])
    task.transition(L.COMPLETED, T0 + 2, "done")
    task.result = 1
    assert await store.save([task]) == []
    late = make_task(state=L.CANCELLED, task_id="done")  # a stale copy, saved late
    assert await store.save([late]) == []  # an unfenced write is ignored
    lease = Lease("done", "p1", 1, T0 + LEASE_S)
    assert await store.save([late], {"done": lease}) == ["done"]  # a fenced one refused
    got = await stored(store, "done")
    assert (got.lifecycle, got.result) == (L.COMPLETED, 1)


async def _finish(store: Store, task_type: str, state: TaskLifecycle, at_s: float) -> Task:
    task = make_task(task_type, state=L.RUNNING, idempotency_key=f"key-{next(_ids)}")
    await store.insert([task])
    task.transition(state, at_s, None)
    task.finished_s = at_s
    await store.save([task])
    return task


async def test_purge_finished_takes_what_finished_by_then_of_the_types_asked(
    store: Store,
) -> None:
    early_job = await _finish(store, "job", L.COMPLETED, T0 + 10)
    early_mail = await _finish(store, "mail", L.FAILED, T0 + 10)
    late_job = await _finish(store, "job", L.COMPLETED, T0 + 50)
    running = make_task("job", state=L.RUNNING)
    await store.insert([running])
    assert await store.purge_finished(T0 + 20, 10, exclude_types=["job", "mail"]) == 0
    assert await store.purge_finished(T0 + 20, 10, task_types=["mail"]) == 1
    assert await store.get(early_mail.id) is None
    assert await store.find_by_idempotency_key(early_mail.idempotency_key or "") is None
    assert await store.purge_finished(T0 + 20, 10, exclude_types=["mail"]) == 1
    assert await store.get(early_job.id) is None
    assert await store.get(late_job.id) is not None  # finished after the cut
    assert await store.purge_finished(T0 + 100, 10) == 1
    assert await store.purge_finished(T0 + 100, 10) == 0
    assert [t.id for t in await store.load_unfinished()] == [running.id]


async def test_purge_finished_stops_at_its_limit(store: Store) -> None:
    for n in range(5):
        await _finish(store, "job" if n % 2 else "mail", L.CANCELLED, T0 + n)
    assert await store.purge_finished(T0 + 10, 3) == 3
    assert await store.purge_finished(T0 + 10, 3) == 2
    assert await store.count_by_state() == {}
