"""SQLite as the default shared store: one truth for state, guarded saves, crash
counting in the claim, payload limits, retention, and the file's own faults."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asched import (
    Scheduler,
    StoreCorruptError,
    StoreError,
    TaskLifecycle,
    TaskNotFoundError,
    TaskValidationError,
)
from asched.model import Task
from asched.stores import open_store
from asched.stores.sqlite.store import SQLiteStore
from asched.testing import FakeClock, settle

L = TaskLifecycle
T0 = 1_800_000_000.0


def url_for(path: Path) -> str:
    return f"sqlite:///{path}"


def assert_intact(path: Path) -> None:
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "asched.db"


@pytest.fixture(autouse=True)
def _every_file_is_intact_afterwards(tmp_path: Path) -> Iterator[None]:
    yield
    for path in tmp_path.glob("*.db"):
        if os.access(path, os.R_OK) and path.stat().st_size:
            assert_intact(path)


@pytest.fixture
async def make_store(db_path: Path) -> AsyncIterator[Callable[..., SQLiteStore]]:
    made: list[SQLiteStore] = []

    def make(path: Path | None = None, **options: Any) -> SQLiteStore:
        store = SQLiteStore(path or db_path, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


def new_task(task_id: str, **fields: Any) -> Task:
    task = Task(task_id, "job", b'{"n":1}', created_s=T0, **fields)
    task.transition(L.QUEUED, T0, None)
    return task


async def eventually(check: Callable[[], Any], within_s: float = 5.0) -> bool:
    """Poll ``check`` (a coroutine function) until it is true, within a real-time bound."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while loop.time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.01)
    return bool(await check())


def rows(path: Path, sql: str) -> list[Any]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


# -- one truth for state -----------------------------------------------------------------


async def test_status_get_and_list_agree_on_every_state(
    db_path: Path, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    s = make_scheduler(store=url_for(db_path))
    release = asyncio.Event()

    @s.task("job")
    async def job() -> str:
        await release.wait()
        return "ok"

    async with s:
        later = await s.schedule_task("job", delay=60)
        now = await s.schedule_task("job")
        for _ in range(200):
            if await s.get_task_status(now) is L.RUNNING:
                break
            await asyncio.sleep(0.005)
        for task_id in (later, now):
            status = await s.get_task_status(task_id)
            assert (await s.get_task(task_id)).lifecycle is status
            listed = await s.list_tasks(status=status)
            assert task_id in [t.id for t in listed]
            assert {t.id: t.lifecycle for t in await s.list_tasks()}[task_id] is status
        assert await s.get_task_status(later) is L.SCHEDULED
        assert await s.get_task_status(now) is L.RUNNING
        # Another process reads the file: RUNNING is on disk before the handler ran.
        assert dict(rows(db_path, "SELECT id, lifecycle FROM tasks"))[now] == "RUNNING"
        release.set()
        await s.wait_for(now)
        assert [t.id for t in await s.list_tasks(status=L.COMPLETED)] == [now]


# -- saves are guarded ------------------------------------------------------------------


async def test_a_finished_row_is_never_written_again(
    make_store: Callable[..., SQLiteStore],
) -> None:
    store = make_store()
    await store.open()
    task = new_task("a")
    await store.insert([task])
    task.transition(L.CANCELLED, T0 + 1, "by an operator")
    task.finished_s = T0 + 1
    await store.save([task])
    late = new_task("a")
    late.transition(L.SCHEDULED, T0 + 2, None)
    late.transition(L.RUNNING, T0 + 2, None)
    late.transition(L.COMPLETED, T0 + 3, None)
    await store.save([late])
    stored = await store.get("a")
    assert stored is not None and stored.lifecycle is L.CANCELLED


async def test_a_cancel_by_another_process_wins_over_an_armed_copy(
    db_path: Path, clock: FakeClock, make_scheduler: Callable[..., Scheduler], make_store: Any
) -> None:
    ran: list[str] = []
    s = make_scheduler(store=url_for(db_path))

    @s.task("job")
    async def job() -> None:
        ran.append("ran")

    async with s:
        task_id = await s.schedule_task("job", delay=10)
        operator = make_store()
        await operator.open()
        leases = await operator.claim([task_id], "operator", clock.now(), 30.0)
        task = await operator.get(task_id)
        assert leases and task is not None
        task.transition(L.CANCELLED, clock.now(), "operator")
        task.finished_s = clock.now()
        assert await operator.save([task], {task_id: leases[0]}) == []
        await clock.advance(20)
        await settle()
        assert ran == []
        stored = await operator.get(task_id)
        assert stored is not None and stored.lifecycle is L.CANCELLED


# -- the attempt is counted in the claim ------------------------------------------------


async def test_a_running_row_left_behind_counts_a_crash_at_the_next_claim(
    make_store: Callable[..., SQLiteStore],
) -> None:
    store = make_store()
    await store.open()
    await store.insert([new_task("a", max_retries=1)])
    first = await store.claim_start(["a"], "w1", T0, 1.0)
    assert [lease.crashes for lease in first] == [0]
    stored = await store.get("a")
    assert stored is not None and stored.lifecycle is L.RUNNING
    # w1 dies; its lease runs out; w2 takes the task over.
    taken = await store.claim_due("w2", T0 + 2, 1.0, 10)
    assert [lease.crashes for lease, _ in taken] == [1]
    # w2 restarts the attempt under its own lease: not a second crash.
    again = await store.claim_start(["a"], "w2", T0 + 2.1, 1.0)
    assert [lease.crashes for lease in again] == [1]
    taken = await store.claim_due("w3", T0 + 5, 1.0, 10)
    assert [lease.crashes for lease, _ in taken] == [2]


async def test_a_poison_task_fails_after_max_retries_crashes(
    db_path: Path, clock: FakeClock, make_scheduler: Callable[..., Scheduler], make_store: Any
) -> None:
    """Each "crash" is a worker that claimed and then vanished (its row says RUNNING)."""
    dead = make_store()
    await dead.open()
    s = make_scheduler(store=url_for(db_path), lease_s=1.0, poll_interval_s=0.01)
    ran: list[int] = []

    @s.task("poison")
    async def poison() -> None:
        ran.append(1)

    async with s:
        task_id = await s.schedule_task("poison", max_retries=1, delay=3600)
        for owner in ("dead-1", "dead-2"):
            await dead.claim_start([task_id], owner, clock.now(), 1.0)
            await clock.advance(2)  # the dead owner's lease runs out
        await clock.advance(3600)  # due here: the start-claim counts dead-2's crash
        for _ in range(300):
            stored = await dead.get(task_id)
            if stored is not None and stored.lifecycle is L.FAILED:
                break
            await asyncio.sleep(0.005)
        stored = await dead.get(task_id)
        assert stored is not None and stored.lifecycle is L.FAILED
        assert stored.error == "worker died during 2 attempts"
        assert ran == []


# -- payloads ---------------------------------------------------------------------------


async def test_payloads_over_the_limit_are_refused_and_bad_results_fail_their_task(
    db_path: Path, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    s = make_scheduler(store=url_for(db_path), max_payload_bytes=10_000)

    @s.task("big")
    async def big() -> str:
        return "x" * 20_000

    @s.task("deep")
    async def deep() -> Any:
        value: Any = []
        for _ in range(1200):
            value = [value]
        return value

    @s.task("fine")
    async def fine() -> int:
        return 1

    async with s:
        with pytest.raises(TaskValidationError, match=r"task_data.*max_payload_bytes"):
            await s.schedule_task("fine", {"blob": "y" * 20_000})
        assert await s.list_tasks() == []
        failed = [await s.schedule_task(name) for name in ("big", "deep")]
        for task_id in failed:
            task_id_status = None
            for _ in range(200):
                task_id_status = await s.get_task_status(task_id)
                if task_id_status is L.FAILED:
                    break
                await asyncio.sleep(0.005)
            task = await s.get_task(task_id)
            assert task.lifecycle is L.FAILED
            assert task.error is not None and task.error.startswith("result cannot be stored")
        # the writer is alive: more work goes through
        assert await s.wait_for(await s.schedule_task("fine")) == 1


# -- retention --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_finished_tasks_are_purged_after_their_ttl(
    kind: str, db_path: Path, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    store = "memory://" if kind == "memory" else url_for(db_path)
    s = make_scheduler(store=store, result_ttl_s=100)

    @s.task("job")
    async def job() -> int:
        return 1

    @s.task("keep", result_ttl_s=None)
    async def keep() -> int:
        return 2

    async with s:
        gone = await s.schedule_task("job")
        kept = await s.schedule_task("keep")
        waiting = await s.schedule_task("job", delay=1000)
        assert await s.wait_for(gone) == 1
        assert await s.wait_for(kept) == 2
        await clock.advance(50)
        await settle()
        assert (await s.get_task(gone)).lifecycle is L.COMPLETED
        await clock.advance(70)  # 120 s after it finished; a pass runs every 60 s

        async def purged() -> bool:
            await clock.advance(0.5)  # a pass re-arms itself after its awaits
            try:
                await s.get_task(gone)
            except TaskNotFoundError:
                return True
            return False

        assert await eventually(purged)
        assert (await s.get_task(kept)).lifecycle is L.COMPLETED
        assert await s.get_task_status(waiting) is L.SCHEDULED


async def test_a_steady_run_does_not_grow_past_the_retention_window(
    db_path: Path, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    """10 tasks/s for 20 virtual minutes with a 2-minute ttl: the file holds about
    2 minutes' worth of rows, and its size stops growing once purging starts."""
    s = make_scheduler(store=url_for(db_path), result_ttl_s=120)

    @s.task("job")
    async def job(n: int) -> dict[str, str]:
        return {"report": "r" * 500}

    sizes: list[int] = []
    async with s:
        for second in range(1200):
            await s.schedule_many([{"task_type": "job", "task_data": {"n": i}} for i in range(10)])
            await clock.advance(1)
            await settle(5)
            if second % 120 == 119:
                sizes.append(_file_pages(db_path))
        counts = rows(db_path, "SELECT count(*) FROM tasks")[0][0]
    # ttl 120 s + one purge period (60 s) + slack, at 10 tasks/s
    assert counts <= 10 * (120 + 60 + 5)
    assert max(sizes[3:]) <= sizes[2] * 1.1 + 8, sizes


def _file_pages(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        used = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return int(used - free + free)  # pages the file holds (free ones included)
    finally:
        db.close()


async def test_an_old_file_is_switched_to_incremental_vacuum(
    db_path: Path, make_store: Callable[..., SQLiteStore]
) -> None:
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE tasks (id TEXT)")  # any table: auto_vacuum is now fixed
    db.execute("DROP TABLE tasks")
    db.commit()
    db.close()
    assert rows(db_path, "PRAGMA auto_vacuum") == [(0,)]
    store = make_store()
    await store.open()
    assert (await store.describe())["auto_vacuum"] == 2


# -- the file ---------------------------------------------------------------------------


async def test_a_new_file_and_its_folder_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "bot.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) & 0o077 == 0


async def test_reading_a_foreign_file_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (body TEXT)")
    db.commit()
    db.close()
    before = _files(path)
    store = open_store(url_for(path), read_only=True)
    with pytest.raises(StoreError, match=re.escape(f"not an asched store: {path}")):
        await store.open()
    await store.close()
    assert _files(path) == before


@pytest.mark.parametrize("damage", ["zeroed header", "truncated"])
async def test_a_damaged_file_is_refused_at_open_naming_it(
    damage: str, db_path: Path, make_store: Callable[..., SQLiteStore]
) -> None:
    store = make_store()
    await store.open()
    await store.insert([new_task(f"t{i}") for i in range(400)])
    await store.close()
    _damage(db_path, damage)
    for read_only in (False, True):
        with pytest.raises(StoreCorruptError, match=re.escape(str(db_path))):
            await make_store(read_only=read_only).open()
    os.unlink(db_path)  # nothing left for the integrity check to trip on


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "zeroed header":
        path.write_bytes(b"\0" * 100 + data[100:])
    else:
        path.write_bytes(data[: len(data) // 2])


def _files(path: Path) -> dict[str, bytes]:
    """Every file of the database (main, -wal, -shm, -journal) and its bytes."""
    return {p.name: p.read_bytes() for p in path.parent.glob(path.name + "*")}


async def test_work_another_process_adds_is_picked_up_before_the_poll_interval(
    db_path: Path, make_store: Callable[..., SQLiteStore]
) -> None:
    s = Scheduler(store=url_for(db_path), poll_interval_s=30.0)
    done = asyncio.Event()

    @s.task("job")
    async def job() -> None:
        done.set()

    async with s:
        producer = make_store()
        await producer.open()
        task = Task("from-elsewhere", "job", b"{}", created_s=0.0)
        task.due_s = 0.0
        task.transition(L.QUEUED, 0.0, None)
        await producer.insert([task])
        await asyncio.wait_for(done.wait(), 2.0)


# -- a refused claim hands back what it was admitted with --------------------------------


async def test_a_refused_claim_returns_its_half_open_trial(
    db_path: Path, clock: FakeClock, make_scheduler: Callable[..., Scheduler], make_store: Any
) -> None:
    s = make_scheduler(store=url_for(db_path))
    s.configure_breaker("api", failure_threshold=1, recovery_s=30, half_open_max_calls=1)
    healthy = False

    @s.task("upload", breaker="api", max_retries=0)
    async def upload(n: int) -> int:
        if not healthy:
            raise ConnectionError("503")
        return n

    async with s:
        other = make_store()
        await other.open()
        failing = await s.schedule_task("upload", {"n": 0})
        with pytest.raises(Exception, match="503"):
            await s.wait_for(failing, timeout=5)
        assert s.breaker_states() == {"api": "open"}
        # Another worker holds this one: it is admitted first as the trial, and its
        # claim is refused.
        held = await s.schedule_task("upload", {"n": 1}, priority="HIGH")
        assert await other.claim([held], "another-worker", clock.now(), 3600.0)
        free = await s.schedule_task("upload", {"n": 2}, priority="LOW")
        healthy = True
        await clock.advance(30)
        assert await s.wait_for(free, timeout=5) == 2
        assert s.breaker_states() == {"api": "closed"}


async def test_a_lease_granted_while_a_heartbeat_is_in_flight_is_not_reported_lost(
    make_store: Callable[..., SQLiteStore],
) -> None:
    store = make_store()
    await store.open()
    await store.insert([new_task(f"t{i}") for i in range(21)])
    await store.claim(["t0"], "w", T0, 30.0)
    for round_ in range(10):
        ids = [f"t{1 + round_ * 2}", f"t{2 + round_ * 2}"]
        # The renew is queued first and runs first: it cannot see the new leases.
        lost, granted = await asyncio.gather(
            store.renew("w", T0 + round_, 30.0), store.claim_start(ids, "w", T0 + round_, 30.0)
        )
        assert lost == [] and len(granted) == 2
    assert await store.renew("w", T0 + 20, 30.0) == []
