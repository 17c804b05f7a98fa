"""SQLiteStore beyond the shared contract: durability, group commit, damage, locks."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import signal
import sqlite3
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from asched import (
    ConfigError,
    Scheduler,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    TaskLifecycle,
    TaskPriority,
    TaskValidationError,
)
from asched.model import Task
from asched.model.codec import encode_record
from asched.stores import open_store
from asched.stores.base import Lease
from asched.stores.sqlite import group as group_module
from asched.stores.sqlite.bulk import PADDED_ROWS
from asched.stores.sqlite.store import MIGRATIONS, SCHEMA_VERSION, SQLiteStore
from asched.stores.sqlite.writer import AHEAD_ROWS
from asched.testing import FakeClock

L = TaskLifecycle
T0 = 1_800_000_000.0


def assert_intact(path: Path) -> None:
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()


def url_for(path: Path) -> str:
    return f"sqlite:///{path}"  # tmp_path is absolute, so this is sqlite:////...


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "asched.db"


@pytest.fixture(autouse=True)
def _every_file_is_intact_afterwards(tmp_path: Path) -> Iterator[None]:
    yield  # torn down last: after the stores and schedulers are closed
    for path in tmp_path.glob("*.db"):
        assert_intact(path)


@pytest.fixture
async def make_store(db_path: Path) -> AsyncIterator[Callable[..., SQLiteStore]]:
    """Open SQLite stores on the test's file; each is closed and the file checked."""
    made: list[SQLiteStore] = []

    def make(**options: Any) -> SQLiteStore:
        store = SQLiteStore(db_path, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


def new_task(task_id: str, **fields: Any) -> Task:
    task = Task(task_id, "job", b'{"n":1}', created_s=T0, **fields)
    task.transition(L.QUEUED, T0, None)
    return task


def raw_db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def insert_version_1(db: sqlite3.Connection, tasks: list[Task]) -> None:
    """Rows as schema versions 1 to 5 wrote them: the whole record, payload and
    result included, in one column."""
    db.executemany(
        "INSERT INTO tasks (id, type, lifecycle, due_s, priority, idempotency_key, "
        "updated_s, version, record) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
        [
            (t.id, t.type, t.lifecycle.name, t.due_s, t.priority, t.idempotency_key, T0, record)
            for t, record in ((t, t.to_json().decode()) for t in tasks)
        ],
    )


# -- durability through the public API ----------------------------------------------------


async def test_a_new_scheduler_on_the_same_file_runs_what_the_old_one_left(
    db_path: Path, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    ran: list[str] = []

    def build() -> Scheduler:
        s = make_scheduler(store=url_for(db_path), max_concurrency=1)

        @s.task("job")
        async def job(name: str) -> str:
            ran.append(name)
            return f"ran {name}"

        return s

    first = build()
    async with first:
        done = await first.schedule_task("job", {"name": "done"})
        assert await first.wait_for(done) == "ran done"
        due_soon = {
            name: await first.schedule_task("job", {"name": name}, delay=delay, priority=prio)
            for name, delay, prio in [
                ("low", 10, TaskPriority.LOW),
                ("critical", 30, TaskPriority.CRITICAL),
                ("high", 20, TaskPriority.HIGH),
            ]
        }
        future = await first.schedule_task("job", {"name": "future"}, delay=3600)
    assert ran == ["done"]

    await clock.advance(100)  # the first scheduler is gone: nothing fires
    assert ran == ["done"]
    second = build()
    async with second:
        for tid in due_soon.values():
            await second.wait_for(tid)
        assert ran == ["done", "critical", "high", "low"]
        assert await second.get_task_status(future) is L.SCHEDULED
        await clock.advance_to(T0 + 3600)
        assert await second.wait_for(future) == "ran future"
        assert ran[-1] == "future"
        kept = await second.get_task(done)
        assert kept.lifecycle is L.COMPLETED
        assert kept.result == "ran done"
        assert [t.to_state for t in kept.history] == [
            L.QUEUED,
            L.SCHEDULED,
            L.RUNNING,
            L.COMPLETED,
        ]
        recovered = await second.get_task(due_soon["low"])
        # A durable store is shared: an armed task is not rewritten at stop (another
        # worker may hold it by then); the row kept QUEUED and the next run took it.
        assert recovered.lifecycle is L.COMPLETED and recovered.retries == 0
    assert_intact(db_path)


async def test_status_is_exact_right_after_tasks_finish(
    db_path: Path, make_scheduler: Callable[..., Scheduler]
) -> None:
    s = make_scheduler(store=url_for(db_path))

    @s.task("double")
    async def double(n: int) -> int:
        return 2 * n

    async with s:
        ids = await asyncio.gather(*(s.schedule_task("double", {"n": n}) for n in range(50)))
        assert [await s.wait_for(tid, timeout=10) for tid in ids] == [2 * n for n in range(50)]
        assert {await s.get_task_status(tid) for tid in ids} == {L.COMPLETED}
        assert len(await s.list_tasks(status=L.COMPLETED)) == 50
    assert_intact(db_path)


async def test_unfinished_work_is_handed_back_to_the_file(
    db_path: Path, make_scheduler: Callable[..., Scheduler]
) -> None:
    s = make_scheduler(store=url_for(db_path))
    started = asyncio.Event()

    @s.task("stuck")
    async def stuck() -> None:
        started.set()
        await asyncio.Event().wait()

    await s.start()
    tid = await s.schedule_task("stuck")
    await started.wait()
    await s.stop(grace_s=0)
    store = SQLiteStore(db_path)
    await store.open()
    try:
        task = await store.get(tid)
        assert task is not None and task.lifecycle is L.QUEUED
        assert task.history[-1].reason == "interrupted by shutdown; handed back"
    finally:
        await store.close()


# -- group commit ------------------------------------------------------------------------


async def test_concurrent_schedule_calls_share_a_few_commits(
    db_path: Path, make_scheduler: Callable[..., Scheduler]
) -> None:
    store = SQLiteStore(db_path)
    s = make_scheduler(store=store, strict_task_types=False)
    async with s:
        before = store.commits
        ids = await asyncio.gather(*(s.schedule_task("job", delay=60) for _ in range(1000)))
        inserts_commits = store.commits - before
        assert len(set(ids)) == 1000
        assert inserts_commits <= 3
        counts = await store.count_by_state()
    assert sum(counts.values()) == 1000
    assert store.commits - before <= 6
    check = raw_db(db_path)
    try:
        assert check.execute("SELECT COUNT(*) FROM tasks").fetchone() == (1000,)
    finally:
        check.close()


async def test_concurrent_calls_with_one_idempotency_key_get_one_task(
    db_path: Path, make_scheduler: Callable[..., Scheduler]
) -> None:
    s = make_scheduler(store=url_for(db_path), strict_task_types=False)
    async with s:
        calls = (s.schedule_task("job", delay=60, idempotency_key="video:c1:42") for _ in range(5))
        ids = await asyncio.gather(*calls)
        assert len(set(ids)) == 1
        assert len(await s.list_tasks()) == 1


async def test_one_bad_call_in_a_group_fails_alone(make_store: Callable[..., SQLiteStore]) -> None:
    store = make_store()
    await store.open()
    await store.insert([new_task("taken", idempotency_key="k")])
    before = store.commits
    results = await asyncio.gather(
        store.insert([new_task("a1"), new_task("a2")]),
        store.insert([new_task("b1"), new_task("b2", idempotency_key="k")]),
        store.insert([new_task("c1")]),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], TaskValidationError)
    assert (results[1].field, results[1].value) == ("idempotency_key", "k")
    # The first call goes at once (nothing was in flight); the others share one group.
    assert store.commits == before + 2
    assert [t.id for t in await store.list_tasks()] == ["taken", "a1", "a2", "c1"]


async def test_lone_inserts_sharing_a_group_fail_alone_and_keep_their_data(
    make_store: Callable[..., SQLiteStore],
) -> None:
    """One-task calls ride a group as rows of their own (no call object each); a
    clash fails only its caller, whatever else the group holds."""
    store = make_store()
    await store.open()
    await store.insert([new_task("taken", idempotency_key="k")])
    empty = Task("empty", "job", b"{}", created_s=T0)
    empty.transition(L.QUEUED, T0, None)
    before = store.commits
    results = await asyncio.gather(
        store.insert([new_task("first")]),  # nothing in flight: it goes at once
        store.insert([new_task("a")]),
        store.insert([new_task("taken")]),
        store.insert([empty]),
        store.insert([new_task("b", idempotency_key="k")]),
        store.insert([new_task("c1"), new_task("c2")]),
        store.insert([new_task("d")]),
        return_exceptions=True,
    )
    clashes = [(r.field, r.value) for r in results if isinstance(r, TaskValidationError)]
    assert clashes == [("task_id", "taken"), ("idempotency_key", "k")]
    assert [results[i] for i in (0, 1, 3, 5, 6)] == [None] * 5
    assert store.commits == before + 2
    stored = {t.id: t for t in await store.list_tasks()}
    assert sorted(stored) == sorted(["taken", "first", "a", "empty", "c1", "c2", "d"])
    assert stored["a"].data == {"n": 1} and stored["empty"].data == {}
    assert stored["taken"].idempotency_key == "k" and "b" not in stored


@pytest.mark.parametrize("count", [1, 3, 300, PADDED_ROWS])
async def test_rows_without_data_go_as_one_statement_and_a_clash_still_fails_alone(
    make_store: Callable[..., SQLiteStore], count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Task rows alone (no data, no result) are one INSERT padded with rows of
    NULLs, committed on its own: exactly the rows are written, and a clash
    rolls that back and fails only its caller."""

    def bare(task_id: str) -> Task:
        task = Task(task_id, "job", b"{}", created_s=T0)
        task.transition(L.QUEUED, T0, None)
        return task

    def no_statement_per_piece(*args: Any) -> None:
        raise AssertionError("the rows went the general way")

    store = make_store()
    await store.open()
    with monkeypatch.context() as patched:
        patched.setattr(group_module, "_write_inserts", no_statement_per_piece)
        await store.insert([bare("taken")])
        await store.insert([bare(f"x{i}") for i in range(count)])
    names = [f"y{i}" for i in range(count)]
    results = await asyncio.gather(
        store.insert([bare("first")]),  # nothing in flight: it goes at once
        *(store.insert([bare(name)]) for name in names),
        store.insert([bare("taken")]),
        return_exceptions=True,
    )
    assert results[:-1] == [None] * (count + 1)
    assert isinstance(results[-1], TaskValidationError) and results[-1].value == "taken"
    stored = sorted(t.id for t in await store.list_tasks())
    assert stored == sorted(["taken", "first", *names, *(f"x{i}" for i in range(count))])


async def test_a_task_that_cannot_be_stored_fails_only_its_call(
    make_store: Callable[..., SQLiteStore],
) -> None:
    store = make_store()
    await store.open()
    far = new_task("far", due_s=1e14)  # past year 9999
    results = await asyncio.gather(
        store.insert([far]), store.insert([new_task("ok")]), return_exceptions=True
    )
    assert isinstance(results[0], TaskValidationError)
    assert results[1] is None
    assert await store.get("far") is None and await store.get("ok") is not None


async def test_a_result_json_cannot_hold_is_stored_as_its_repr(
    make_store: Callable[..., SQLiteStore], caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store()
    await store.open()
    task = new_task("odd")
    await store.insert([task])
    task.transition(L.SCHEDULED, T0 + 1, None)
    task.transition(L.RUNNING, T0 + 2, None)
    task.transition(L.COMPLETED, T0 + 3, None)
    task.result = {"when": {1, 2}}
    with caplog.at_level(logging.WARNING, logger="asched.stores.sqlite"):
        await store.save([task])
    got = await store.get("odd")
    assert got is not None and got.lifecycle is L.COMPLETED
    assert got.result == {"when": "{1, 2}"}
    assert "'odd'" in caplog.text


def test_the_lean_encoder_writes_exactly_to_dict() -> None:
    from test_store_contract import full_task

    for task in (full_task(), Task("bare", "t", created_s=T0), new_task("q")):
        assert orjson.loads(encode_record(task)) == task.to_dict()


# -- damage, locks, full disks ------------------------------------------------------------


async def test_a_corrupt_row_is_skipped_and_reported(
    db_path: Path,
    make_store: Callable[..., SQLiteStore],
    make_scheduler: Callable[..., Scheduler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = make_store()
    await store.open()
    await store.insert([new_task(name) for name in ("good", "bad-json", "bad-record")])
    damage = raw_db(db_path)
    try:
        damage.execute("UPDATE tasks SET record = '{not json' WHERE id = 'bad-json'")
        damage.execute("""UPDATE tasks SET record = '{"id": 7}' WHERE id = 'bad-record'""")
    finally:
        damage.close()
    with caplog.at_level(logging.WARNING, logger="asched.stores.sqlite"):
        assert [t.id for t in await store.load_unfinished()] == ["good"]
        assert [t.id for t in await store.list_tasks()] == ["good"]
    assert store.corrupt_rows == 4
    assert "'bad-json'" in caplog.text and "'bad-record'" in caplog.text
    with pytest.raises(StoreCorruptError, match="bad-json"):
        await store.get("bad-json")
    await store.close()

    ran: list[str] = []
    s = make_scheduler(store=url_for(db_path))

    @s.task("job")
    async def job(n: int) -> None:
        ran.append("job")

    async with s:
        await s.wait_for("good")
    assert ran == ["job"]


async def test_a_locked_database_raises_busy_then_recovers(
    db_path: Path, make_store: Callable[..., SQLiteStore]
) -> None:
    store = make_store(busy_timeout_ms=10, busy_deadline_s=0.2)
    await store.open()
    await store.insert([new_task("before")])
    other = raw_db(db_path)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreBusyError, match="locked"):
            await store.insert([new_task("during")])
        assert await store.get("before") is not None  # WAL: reads do not wait
        other.execute("ROLLBACK")
    finally:
        other.close()
    await store.insert([new_task("during")])
    assert [t.id for t in await store.list_tasks()] == ["before", "during"]


async def test_a_full_database_raises_store_full_and_keeps_working(
    make_store: Callable[..., SQLiteStore],
) -> None:
    store = make_store(pragmas={"max_page_count": 26})  # the schema takes ~24 pages
    await store.open()
    big = orjson.dumps({"blob": "x" * 3000})
    tasks = [Task(f"big-{i}", "job", big, created_s=T0) for i in range(40)]
    with pytest.raises(StoreFullError, match="full"):
        await store.insert(tasks)
    assert await store.count_by_state() == {}
    await store.insert([new_task("small")])
    assert await store.get("small") is not None


async def test_wal_busy_timeout_and_schema_version_are_set(
    db_path: Path, make_store: Callable[..., SQLiteStore]
) -> None:
    store = make_store(busy_timeout_ms=1234, synchronous="full")
    await store.open()
    settings = await store.describe()
    assert settings["journal_mode"] == "wal"
    assert settings["busy_timeout"] == 1234
    assert settings["synchronous"] == "FULL"
    assert settings["user_version"] == SCHEMA_VERSION == len(MIGRATIONS)
    await store.close()
    assert (await _reopen_describe(make_store))["synchronous"] == "NORMAL"


async def _reopen_describe(make_store: Callable[..., SQLiteStore]) -> dict[str, Any]:
    store = make_store()
    await store.open()
    return await store.describe()


def finished_with(task_id: str, result: Any) -> Task:
    task = new_task(task_id)
    task.transition(L.SCHEDULED, T0, None)
    task.transition(L.RUNNING, T0, None)
    task.transition(L.COMPLETED, T0 + 1, None)
    task.result = result
    return task


#: Results of every JSON kind, to move out of version-1 records exactly.
OLD_RESULTS = [{"answer": 0.30000000000000004, "text": "é\n"}, 0.1 + 0.2, 1e300, 'é\n"', True]
OLD_RESULTS += [False, 12, [1, 2.5], 0.0]


async def test_a_version_1_file_is_migrated_and_keeps_its_tasks(
    db_path: Path, make_store: Callable[..., SQLiteStore]
) -> None:
    old = raw_db(db_path)
    done = [finished_with(f"done-{i}", result) for i, result in enumerate(OLD_RESULTS)]
    empty = Task("empty-task", "job", created_s=T0, idempotency_key="once")
    empty.transition(L.QUEUED, T0, None)
    tasks = [new_task("old-task"), *done, empty]
    try:
        for statement in MIGRATIONS[0]:
            old.execute(statement)
        insert_version_1(old, tasks)
        old.execute("PRAGMA user_version = 1")
    finally:
        old.close()
    store = make_store()
    await store.open()
    assert (await store.describe())["user_version"] == SCHEMA_VERSION
    for before in tasks:
        after = await store.get(before.id)
        assert after is not None
        assert after.to_dict() == before.to_dict()
    assert await store.find_by_idempotency_key("once") == "empty-task"
    with pytest.raises(TaskValidationError, match="idempotency_key"):
        await store.insert([new_task("again", idempotency_key="once")])
    payloads = raw_db(db_path)
    try:
        rowids = payloads.execute("SELECT id FROM tasks ORDER BY rowid").fetchall()
        assert rowids == [(t.id,) for t in tasks]
        with_data = payloads.execute("SELECT id, data FROM task_data").fetchall()
        assert sorted(with_data) == sorted((t.id, b'{"n":1}') for t in tasks[:-1])
        with_result = payloads.execute("SELECT id FROM task_results").fetchall()
        assert sorted(with_result) == sorted((t.id,) for t in done)
        assert payloads.execute(
            "SELECT count(*) FROM tasks WHERE json_type(record, '$.data') IS NOT NULL "
            "OR json_type(record, '$.result') IS NOT NULL"
        ).fetchone() == (0,)
    finally:
        payloads.close()
    await store.save_schedules([{"id": "s1", "version": 1}])
    assert await store.load_schedules() == [{"id": "s1", "version": 1}]


async def test_recurring_schedules_survive_a_restart(
    db_path: Path, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    fired = asyncio.Event()

    def build() -> Scheduler:
        s = make_scheduler(store=url_for(db_path))

        @s.task("analytics")
        async def analytics() -> None:
            fired.set()

        return s

    first = build()
    async with first:
        await first.schedule_recurring("analytics", interval=60, schedule_id="stats")
    second = build()
    async with second:
        assert [info["id"] for info in await second.list_schedules()] == ["stats"]
        await clock.advance(60)
        await asyncio.wait_for(fired.wait(), 10)
        assert (await second.get_schedule("stats"))["fired"] == 1


async def test_a_newer_schema_is_refused(db_path: Path) -> None:
    db = raw_db(db_path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    store = SQLiteStore(db_path)
    with pytest.raises(StoreError, match="newer"):
        await store.open()
    await store.close()


async def test_data_survives_reopening_and_writes_after_close_are_refused(
    make_store: Callable[..., SQLiteStore],
) -> None:
    first = make_store()
    await first.open()
    await first.insert([new_task("kept")])
    await first.close()
    with pytest.raises(StoreError, match="not open"):
        await first.insert([new_task("late")])
    second = make_store()
    await second.open()
    assert await second.get("kept") is not None
    assert (await second.describe())["commits"] == 0


# -- URLs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path", "options"),
    [
        ("sqlite:///bot.db", "bot.db", {}),
        ("sqlite:///data/bot.db", "data/bot.db", {}),
        ("sqlite:////var/lib/asched/bot.db", "/var/lib/asched/bot.db", {}),
        (
            "SQLITE:///bot.db?synchronous=full&busy_timeout_ms=50&busy_deadline_s=2.5",
            "bot.db",
            {"synchronous": "FULL", "busy_timeout_ms": 50, "busy_deadline_s": 2.5},
        ),
    ],
)
def test_urls(url: str, path: str, options: dict[str, Any]) -> None:
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    assert store.path == path
    for name, value in options.items():
        assert getattr(store, name) == value


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///",
        "sqlite://bot.db",
        "sqlite:///:memory:",
        "sqlite:///bot.db?synchronous=sometimes",
        "sqlite:///bot.db?busy_timeout_ms=soon",
        "sqlite:///bot.db?journal=delete",
    ],
)
def test_bad_urls_name_the_problem(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url)


def test_unknown_schemes_list_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"memory://.*sqlite:///"):
        open_store("mongodb://x")


# -- crash --------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from asched import Scheduler

    async def main(url):
        s = Scheduler(store=url)

        @s.task("job")
        async def job() -> None: ...

        async with s:
            while True:
                batch = [s.schedule_task("job", delay=3600) for _ in range(50)]
                ids = await asyncio.gather(*batch)
                sys.stdout.write("".join(i + "\\n" for i in ids))
                sys.stdout.flush()

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_every_acknowledged_task_survives_sigkill(db_path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, url_for(db_path), stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    acknowledged: list[str] = []
    try:
        while len(acknowledged) < 2000:
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            assert line.endswith(b"\n"), "the child died early"
            acknowledged.append(line.decode().strip())
    finally:
        child.kill()  # SIGKILL, mid-stream
        rest = await child.stdout.read()
        assert await child.wait() == -signal.SIGKILL
    acknowledged += [line.decode() for line in rest.split(b"\n")[:-1]]

    store = SQLiteStore(db_path)
    await store.open()
    try:
        stored = {t.id for t in await store.list_tasks()}
    finally:
        await store.close()
    assert set(acknowledged) <= stored
    assert_intact(db_path)


# -- leases across processes --------------------------------------------------------------


def lease_columns(path: Path) -> list[tuple[Any, ...]]:
    db = raw_db(path)
    try:
        return db.execute("SELECT id, owner, lease_token, lease_expires FROM tasks").fetchall()
    finally:
        db.close()


async def test_two_stores_racing_claim_grant_each_id_once(
    db_path: Path, make_store: Callable[..., SQLiteStore]
) -> None:
    first, second = make_store(), make_store()  # two connections each, as two processes
    await first.open()
    await second.open()
    ids = [f"t{i}" for i in range(1000)]
    await first.insert([new_task(i) for i in ids])
    rng = random.Random(7)

    async def grab(store: SQLiteStore, owner: str) -> list[Lease]:
        order = rng.sample(ids, len(ids))
        got: list[Lease] = []
        for i in range(0, len(order), 50):
            got += await store.claim(order[i : i + 50], owner, T0, 60)
        return got

    batches = await asyncio.gather(grab(first, "p1"), grab(second, "p2"))
    granted = [lease for batch in batches for lease in batch]
    by_owner = {owner: {x.task_id for x in granted if x.owner == owner} for owner in ("p1", "p2")}
    assert len(granted) == len(ids)
    assert by_owner["p1"] | by_owner["p2"] == set(ids)
    assert not by_owner["p1"] & by_owner["p2"]
    # How the ids split depends on who holds the write lock when; that none is granted
    # twice does not.
    assert {x.token for x in granted} == {1}


async def test_two_stores_racing_claim_due_share_the_work(
    make_store: Callable[..., SQLiteStore],
) -> None:
    stores = [make_store(), make_store()]
    for store in stores:
        await store.open()
    await stores[0].insert([new_task(f"t{i}", due_s=T0 + i % 7) for i in range(500)])

    async def drain(store: SQLiteStore, owner: str) -> list[str]:
        got: list[str] = []
        while batch := await store.claim_due(owner, T0 + 10, 60, 20):
            got += [lease.task_id for lease, _ in batch]
        return got

    one, two = await asyncio.gather(drain(stores[0], "p1"), drain(stores[1], "p2"))
    assert len(one) + len(two) == 500
    assert set(one) | set(two) == {f"t{i}" for i in range(500)}


def query_plan(path: Path, sql: str, params: dict[str, Any] | tuple[Any, ...]) -> str:
    db = raw_db(path)
    try:
        return " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))
    finally:
        db.close()


async def test_lease_queries_use_their_indexes_and_never_sort(
    db_path: Path, make_store: Callable[..., SQLiteStore]
) -> None:
    from asched.stores.sqlite.leases import (
        CLAIM_DUE_SQL,
        CLAIM_DUE_TYPES_SQL,
        NEXT_DUE_SQL,
        RENEW_SQL,
    )

    store = make_store()
    await store.open()
    params = {"owner": "p1", "now": T0, "expires": T0, "exclude": "[]", "limit": 10}
    for claim in (CLAIM_DUE_SQL, CLAIM_DUE_TYPES_SQL):
        plan = query_plan(db_path, claim.partition(" RETURNING")[0], {**params, "types": "[]"})
        assert "USING INDEX tasks_claimable" in plan and "TEMP B-TREE" not in plan
    plan = query_plan(db_path, NEXT_DUE_SQL, params)
    assert "USING INDEX tasks_by_owner" in plan and "tasks_claimable" in plan
    plan += query_plan(db_path, RENEW_SQL.partition(" RETURNING")[0], (T0, "p1", T0))
    assert "USING INDEX tasks_by_owner" in plan
    assert "TEMP B-TREE" not in plan and "SCAN tasks" not in plan


def test_the_claim_index_condition_matches_the_claimable_states() -> None:
    from asched.stores.base import CLAIMABLE_STATES
    from asched.stores.sqlite.connection import CLAIMABLE_SQL

    assert any(CLAIMABLE_SQL in statement for statement in MIGRATIONS[2])
    assert set(re.findall(r"'(\w+)'", CLAIMABLE_SQL)) == {s.name for s in CLAIMABLE_STATES}


async def test_inserted_and_saved_rows_are_unleased(
    db_path: Path, make_store: Callable[..., SQLiteStore]
) -> None:
    store = make_store()
    await store.open()
    task = new_task("fresh")
    await store.insert([task])
    task.transition(L.SCHEDULED, T0 + 1, None)
    await store.save([task])
    assert lease_columns(db_path) == [("fresh", None, 0, None)]


async def test_a_version_2_file_gains_the_lease_columns(
    db_path: Path, make_store: Callable[..., SQLiteStore]
) -> None:
    old = raw_db(db_path)
    try:
        for statements in MIGRATIONS[:2]:
            for statement in statements:
                old.execute(statement)
        insert_version_1(old, [new_task("a"), new_task("b")])
        old.execute("PRAGMA user_version = 2")
    finally:
        old.close()
    store = make_store()
    await store.open()
    assert (await store.describe())["user_version"] == SCHEMA_VERSION == len(MIGRATIONS)
    assert sorted(lease_columns(db_path)) == [("a", None, 0, None), ("b", None, 0, None)]
    assert [t.id for t in await store.load_unfinished()] == ["a", "b"]
    [(lease, task)] = await store.claim_due("p1", T0, 30, 1)
    assert (lease.task_id, lease.token, task.id) == ("a", 1, "a")
    assert [t.id for t in await store.list_tasks()] == ["a", "b"]
    await store.close()
    assert_intact(db_path)
    db = raw_db(db_path)
    try:
        indexes = {row[1] for row in db.execute("PRAGMA index_list(tasks)")}
    finally:
        db.close()
    assert {"tasks_claimable", "tasks_by_owner"} <= indexes


async def test_an_unreadable_claimed_row_is_skipped_and_kept_out_of_circulation(
    db_path: Path, make_store: Callable[..., SQLiteStore], caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store()
    await store.open()
    await store.insert([new_task("bad", due_s=T0 - 1), new_task("good", due_s=T0)])
    damage = raw_db(db_path)
    try:
        damage.execute("UPDATE tasks SET record = '{not json' WHERE id = 'bad'")
    finally:
        damage.close()
    with caplog.at_level(logging.WARNING, logger="asched.stores.sqlite"):
        got = await store.claim_due("p1", T0, 30, 10)
    assert [task.id for _, task in got] == ["good"]
    assert store.corrupt_rows == 1 and "'bad'" in caplog.text
    assert await store.claim_due("p2", T0 + 1, 30, 10) == []
    assert await store.renew("p1", T0 + 20, 30) == []
    assert await store.claim_due("p2", T0 + 40, 30, 10) == []


async def test_a_refused_fenced_save_shares_its_group_with_other_writes(
    make_store: Callable[..., SQLiteStore],
) -> None:
    store = make_store()
    await store.open()
    tasks = [new_task(f"t{i}") for i in range(3)]
    await store.insert(tasks)
    [lease] = await store.claim(["t0"], "p1", T0, 30)
    stale = Lease("t0", "p1", lease.token - 1, T0 + 30)
    for task in tasks:
        task.transition(L.SCHEDULED, T0 + 1, None)
    before = store.commits
    results = await asyncio.gather(
        store.save([tasks[0]], {"t0": stale}),
        store.save([tasks[1]]),
        store.insert([new_task("t3")]),
        store.claim(["t2"], "p2", T0, 30),
        store.save([tasks[2]], {"t2": Lease("t2", "p2", 1, T0 + 30)}),
    )
    assert store.commits - before <= 2
    assert results[0] == ["t0"]
    assert results[1] == []
    assert {t.id: t.lifecycle for t in await store.list_tasks()} == {
        "t0": L.QUEUED,
        "t1": L.SCHEDULED,
        "t2": L.SCHEDULED if results[4] == [] else L.QUEUED,
        "t3": L.QUEUED,
    }


CLAIMER = textwrap.dedent(
    """
    import asyncio, sys
    from asched.stores.sqlite.store import SQLiteStore

    async def main(path, owner, now_s):
        store = SQLiteStore(path)
        await store.open()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # both start at once
        try:
            while batch := await store.claim_due(owner, now_s, 60, 10):
                sys.stdout.write("".join(lease.task_id + "\\n" for lease, _ in batch))
        finally:
            await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
    """
)


async def test_two_processes_claiming_due_work_never_share_a_task(
    db_path: Path, make_store: Callable[..., SQLiteStore]
) -> None:
    store = make_store()
    await store.open()
    ids = {f"t{i}" for i in range(2000)}
    await store.insert([new_task(i, due_s=T0) for i in sorted(ids)])
    await store.close()
    pipe = asyncio.subprocess.PIPE
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLAIMER, str(db_path), owner, str(T0), stdin=pipe, stdout=pipe
        )
        for owner in ("p1", "p2")
    ]
    for child in children:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"ready\n"
    outputs = [child.communicate(b"go\n") for child in children]
    got = [out.decode().split() for out, _ in await asyncio.wait_for(asyncio.gather(*outputs), 60)]
    assert [child.returncode for child in children] == [0, 0]
    assert len(got[0]) + len(got[1]) == len(ids)
    assert set(got[0]) | set(got[1]) == ids
    assert not set(got[0]) & set(got[1])
    assert got[0] and got[1], "no race: one process took everything"
    assert {row[1] for row in lease_columns(db_path)} == {"p1", "p2"}


async def test_a_started_task_reads_back_running_from_its_claim_until_its_record_catches_up(
    db_path: Path, make_store: Callable[..., SQLiteStore]
) -> None:
    store = make_store()
    await store.open()
    task = new_task("a")
    task.transition(L.SCHEDULED, T0, None)
    old = new_task("old")
    old.transition(L.SCHEDULED, T0, None)
    db = raw_db(db_path)
    try:
        insert_version_1(db, [old])  # a row an earlier asched wrote
    finally:
        db.close()
    await store.insert([task])
    [lease, _] = await store.claim_start(["a", "old"], "p1", T0 + 5, 30)
    for task_id in ("a", "old"):
        got = await store.get(task_id)
        assert got is not None and (got.lifecycle, got.started_s) == (L.RUNNING, T0 + 5)
    assert [t.started_s for t in await store.list_tasks(L.RUNNING)] == [T0 + 5, T0 + 5]
    # The worker's own record of the attempt, written later, is what reads see then.
    task.transition(L.RUNNING, T0 + 5.5, None)
    task.started_s = T0 + 5.5
    assert await store.save([task], {"a": lease}) == []
    got = await store.get("a")
    assert got is not None and got.started_s == T0 + 5.5
    # A later claim (the worker died; another took over) starts it again.
    [again] = await store.claim_start(["a"], "p2", T0 + 60, 30)
    got = await store.get("a")
    assert again.crashes == 1 and got is not None and got.started_s == T0 + 60


async def test_groups_sent_while_one_waits_on_a_locked_database_commit_in_order(
    db_path: Path, make_store: Callable[..., SQLiteStore]
) -> None:
    store = make_store(busy_timeout_ms=10, busy_deadline_s=10)
    await store.open()
    other = raw_db(db_path)
    other.execute("BEGIN IMMEDIATE")
    first = asyncio.ensure_future(store.insert([new_task("first")]))
    await asyncio.sleep(0.05)  # it found the file locked and waits to retry
    # Big enough to be sent while the first is in flight: it must not overtake it.
    rest = [new_task(f"later{i}") for i in range(AHEAD_ROWS)]
    later = asyncio.ensure_future(store.insert(rest))
    await asyncio.sleep(0.05)
    assert not first.done() and not later.done()
    other.execute("ROLLBACK")
    other.close()
    await asyncio.gather(first, later)
    db = raw_db(db_path)
    try:
        order = [row[0] for row in db.execute("SELECT id FROM tasks ORDER BY rowid")]
    finally:
        db.close()
    assert order == ["first"] + [t.id for t in rest]


async def test_a_big_group_is_sent_while_another_commits(
    make_store: Callable[..., SQLiteStore],
) -> None:
    store = make_store()
    await store.open()
    calls = [store.insert([new_task(f"c{n}-{i}") for i in range(AHEAD_ROWS)]) for n in range(4)]
    before = store.commits
    await asyncio.gather(*calls)
    # Each call went out on its own instead of waiting to be settled and then joined.
    assert store.commits - before == 4
    assert len(await store.list_tasks()) == 4 * AHEAD_ROWS


async def _three_done_saves_held(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Task], dict[str, Lease], threading.Event]:
    """Three tasks started and completed under p1's leases (their saves to come),
    a fourth, "next", waiting; saves then wait on the database thread until the
    returned event is set."""
    done = [new_task(f"d{i}") for i in range(3)]
    await store.insert([*done, new_task("next")])
    leases = {x.task_id: x for x in await store.claim_start([t.id for t in done], "p1", T0, 30)}
    for task in done:
        task.transition(L.SCHEDULED, T0, None)
        task.transition(L.RUNNING, T0, None)
        task.transition(L.COMPLETED, T0 + 1, None)
    gate = threading.Event()
    write_saves = group_module.write_saves

    def held_saves(db: sqlite3.Connection, saves: Any) -> set[str]:
        gate.wait(10)
        return write_saves(db, saves)

    monkeypatch.setattr(group_module, "write_saves", held_saves)
    return done, leases, gate


async def test_a_start_claim_commits_ahead_of_saves_queued_with_it(
    make_store: Callable[..., SQLiteStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store()
    await store.open()
    # The saves wait on the database thread until told: a claim queued behind
    # them could not finish meanwhile.
    done, leases, gate = await _three_done_saves_held(store, monkeypatch)
    before = store.commits
    save = asyncio.ensure_future(store.save(done, leases))
    claim = asyncio.ensure_future(store.claim_start(["next"], "p1", T0 + 1, 30))
    # The claim went first, in a group of its own: its task can run while the
    # saves are written.
    assert [x.task_id for x in await asyncio.wait_for(claim, 5)] == ["next"]
    assert not save.done()
    gate.set()
    assert await save == [] and store.commits - before == 2


async def test_a_start_claim_is_sent_while_other_writes_are_in_flight(
    make_store: Callable[..., SQLiteStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start-claim does not wait for the groups in flight to be settled: it is
    queued on the database thread at once, so it commits right after them while
    smaller writes still gather in the open group."""
    store = make_store()
    await store.open()
    done, leases, gate = await _three_done_saves_held(store, monkeypatch)
    groups = store._groups
    assert groups is not None
    before = store.commits
    save = asyncio.ensure_future(store.save(done[:2], leases))
    await _turns()  # a save's group is sent once the loop has run what is ready
    assert len(groups.inflight) == 1
    claim = asyncio.ensure_future(store.claim_start(["next"], "p1", T0 + 1, 30))
    await _turns()
    assert len(groups.inflight) == 2 and not groups.open_group
    late_save = asyncio.ensure_future(store.save(done[2:], leases))
    await _turns()
    assert len(groups.inflight) == 2 and groups.open_group  # a save waits its turn
    gate.set()
    assert [x.task_id for x in await asyncio.wait_for(claim, 5)] == ["next"]
    assert await save == [] and await late_save == []
    assert store.commits - before == 3


async def _turns(count: int = 3) -> None:
    """Let the loop run what is ready, a few rounds over."""
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_start_claim_stays_behind_a_save_of_its_own_task(
    make_store: Callable[..., SQLiteStore],
) -> None:
    store = make_store()
    await store.open()
    task = new_task("a")
    await store.insert([task])
    [lease] = await store.claim(["a"], "p1", T0, 30)
    task.transition(L.SCHEDULED, T0, None)
    task.transition(L.QUEUED, T0, "handed back")  # ends p1's lease
    handed, taken = await asyncio.gather(
        store.save([task], {"a": lease}), store.claim_start(["a"], "p2", T0 + 1, 30)
    )
    assert handed == [] and [(x.task_id, x.owner) for x in taken] == [("a", "p2")]


async def test_only_saves_left_unwritten_for_their_lease_are_refused(
    make_store: Callable[..., SQLiteStore],
) -> None:
    """A save that ends its lease is written and not refused, though its row no
    longer names the owner; one left unwritten because its row is finished is not
    refused either; a stale lease and a vanished row are."""
    store = make_store()
    await store.open()
    ids = ["ends", "finished", "stale", "unfenced", "gone"]
    tasks = {i: new_task(i) for i in ids}
    await store.insert(list(tasks.values()))
    leases = {x.task_id: x for x in await store.claim(ids, "p1", T0, 30)}
    raw = raw_db(store.path)
    try:  # finished by another writer, its lease left as it was; and one row gone
        raw.execute("UPDATE tasks SET lifecycle = 'COMPLETED' WHERE id = 'finished'")
        raw.execute("DELETE FROM tasks WHERE id = 'gone'")
    finally:
        raw.close()
    leases["stale"] = Lease("stale", "p1", 0, T0 + 30)
    for task_id in ("ends", "finished"):
        task = tasks[task_id]
        for step in (L.SCHEDULED, L.RUNNING, L.COMPLETED):
            task.transition(step, T0 + 2, None)
    for task_id in ("stale", "unfenced", "gone"):
        tasks[task_id].transition(L.SCHEDULED, T0 + 2, None)
    fences = {i: leases[i] for i in ("ends", "finished", "stale", "gone")}
    assert sorted(await store.save(list(tasks.values()), fences)) == ["gone", "stale"]
    states = {t.id: t.lifecycle for t in await store.list_tasks()}
    assert states == {
        "ends": L.COMPLETED,
        "finished": L.COMPLETED,
        "stale": L.QUEUED,
        "unfenced": L.SCHEDULED,
    }


async def test_saves_of_more_rows_than_a_statement_takes_refuse_exactly_the_stale_ones(
    make_store: Callable[..., SQLiteStore],
) -> None:
    store = make_store()
    await store.open()
    tasks = [new_task(f"t{i}") for i in range(PADDED_ROWS + 300)]
    await store.insert(tasks)
    leases = {x.task_id: x for x in await store.claim([t.id for t in tasks], "p1", T0, 30)}
    stale = {"t5", f"t{PADDED_ROWS + 7}"}
    for task_id in stale:
        leases[task_id] = Lease(task_id, "p1", 0, T0 + 30)
    for task in tasks:
        task.transition(L.SCHEDULED, T0, None)
    assert sorted(await store.save(tasks, leases)) == sorted(stale)
    states = {t.id: t.lifecycle for t in await store.list_tasks()}
    assert {i for i, state in states.items() if state is L.QUEUED} == stale
    assert sum(state is L.SCHEDULED for state in states.values()) == len(tasks) - 2
