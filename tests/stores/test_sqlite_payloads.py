"""SQLiteStore keeps payloads apart from state: a state change never rewrites them.

SQLite rewrites a whole row on any UPDATE, so the task data lives in its own
table, written once at insert, and the result in another, written once when the
task completes.  These tests watch the file and its write-ahead log grow while
a task with a large payload changes state through the public API.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from asched import Scheduler, TaskLifecycle, TaskPriority
from asched.model import Task
from asched.stores.sqlite.store import SQLiteStore
from asched.testing import FakeClock

L = TaskLifecycle
PAYLOAD_BYTES = 500_000


def on_disk(path: Path) -> int:
    """Bytes in the database file and its write-ahead log."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


async def until(check: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    """Wait until ``check()`` holds (the write-back flushes soon after a change)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not await check():
        assert loop.time() < deadline, "the change never reached the store"
        await asyncio.sleep(0.005)


async def test_state_changes_do_not_rewrite_a_large_payload(
    tmp_path: Path, clock: FakeClock, make_scheduler: Callable[..., Scheduler]
) -> None:
    path = tmp_path / "big.db"
    store = SQLiteStore(path)
    s = make_scheduler(store=store)
    result_text = "r" * 300_000

    @s.task("render")
    async def render(blob: str) -> dict[str, str]:
        return {"echo": blob[:10], "big": result_text}

    async with s:
        blob = "x" * PAYLOAD_BYTES
        tid = await s.schedule_task("render", {"blob": blob}, delay=60)
        after_insert = on_disk(path)

        async def stored(check: Callable[[Task], bool]) -> bool:
            task = await store.get(tid)
            return task is not None and check(task)

        changes = 0
        for priority in (TaskPriority.HIGH, TaskPriority.LOW, TaskPriority.CRITICAL):
            assert await s.pause_task(tid)
            await until(lambda: stored(lambda t: t.lifecycle is L.PAUSED))
            assert await s.set_priority(tid, priority)
            await until(lambda p=priority: stored(lambda t: t.priority is p))  # type: ignore[misc]
            assert await s.resume_task(tid)
            await until(lambda: stored(lambda t: t.lifecycle is not L.PAUSED))
            changes += 3
        grown = on_disk(path) - after_insert
        # Rewriting the payload would add at least one payload per save.
        assert grown < PAYLOAD_BYTES / 4, f"{changes} saves grew the file by {grown} bytes"

        before_run = on_disk(path)
        await clock.advance(60)
        assert (await s.wait_for(tid, timeout=10))["echo"] == "x" * 10
        await until(lambda: stored(lambda t: t.lifecycle is L.COMPLETED))
        # The start and the finish wrote the result once, and the data not at all.
        assert on_disk(path) - before_run < len(result_text) + PAYLOAD_BYTES / 4

        for task in (await s.get_task(tid), await store.get(tid), *await store.list_tasks()):
            assert task.data == {"blob": blob}
            assert task.result == {"echo": "x" * 10, "big": result_text}


async def test_payloads_are_stored_once_and_gone_with_their_task(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler]
) -> None:
    path = tmp_path / "tables.db"
    s = make_scheduler(store=f"sqlite:///{path}", strict_task_types=False, result_ttl_s=None)
    async with s:
        with_data = await s.schedule_task("job", {"n": 1}, delay=60)
        await s.schedule_task("job", delay=60)  # empty data: no payload row
        assert await s.cancel_task(with_data)
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT id, data FROM task_data").fetchall() == [(with_data, b'{"n":1}')]
        assert db.execute("SELECT count(*) FROM task_results").fetchone() == (0,)
        assert db.execute(
            "SELECT count(*) FROM tasks WHERE json_type(record, '$.data') IS NOT NULL"
        ).fetchone() == (0,)
    finally:
        db.close()


@pytest.mark.parametrize("result", [None, 0, "", [1, 2.5], {"a": 0.30000000000000004}])
async def test_every_kind_of_result_comes_back(
    tmp_path: Path, result: object, make_scheduler: Callable[..., Scheduler]
) -> None:
    path = tmp_path / "results.db"
    s = make_scheduler(store=f"sqlite:///{path}")

    @s.task("give")
    async def give() -> object:
        return result

    async with s:
        tid = await s.schedule_task("give")
        assert await s.wait_for(tid, timeout=10) == result
    reopened = SQLiteStore(path, read_only=True)
    await reopened.open()
    try:
        task = await reopened.get(tid)
        assert task is not None and task.lifecycle is L.COMPLETED
        assert task.result == result
    finally:
        await reopened.close()
