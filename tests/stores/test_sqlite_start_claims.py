"""SQLite start-claims in one statement (``leases.start_rows``) grant exactly what
the general two-pass claim (``claim_rows(start=True)``) grants, row for row."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from asched import TaskLifecycle
from asched.model import Task
from asched.stores.sqlite.leases import claim_rows, start_rows
from asched.stores.sqlite.store import SQLiteStore

L = TaskLifecycle
T0 = 1_800_000_000.0
NOW = T0 + 100
EXPIRES = NOW + 30
IDS = ["fresh1", "fresh2", "mine", "stale_guess", "taken", "crashed", "held", "done", "gone"]
#: what the claiming process believes about the tokens (from the leases it holds)
TOKENS = {"mine": 1, "taken": 1, "crashed": 1}


def _task(task_id: str) -> Task:
    task = Task(task_id, "job", b"{}", created_s=T0)
    task.transition(L.QUEUED, T0, None)
    return task


async def _file(path: Path) -> None:
    """One row in each situation a start-claim can meet."""
    store = SQLiteStore(path)
    await store.open()
    await store.insert([_task(i) for i in IDS if i != "gone"])
    await store.close()
    db = sqlite3.connect(path, isolation_level=None)
    for sql in (
        # leased by this process (p1), free to start
        "UPDATE tasks SET owner = 'p1', lease_token = 1, lease_expires = 200e9 WHERE id = 'mine'",
        # leased and let go by another: its token moved on, unknown here
        "UPDATE tasks SET lease_token = 3 WHERE id = 'stale_guess'",
        # another process holds it
        "UPDATE tasks SET owner = 'p2', lease_token = 2, lease_expires = 200e9 WHERE id = 'taken'",
        # started by a worker that went away: a lost attempt, counted by the claim
        "UPDATE tasks SET lifecycle = 'RUNNING', owner = 'p2', lease_token = 1, "
        "lease_expires = 1.0 WHERE id = 'crashed'",
        # paused by a user
        "UPDATE tasks SET lifecycle = 'PAUSED', "
        "record = json_set(record, '$.user_paused', json('true')) WHERE id = 'held'",
        "UPDATE tasks SET lifecycle = 'COMPLETED', finished_s = 1.0 WHERE id = 'done'",
    ):
        db.execute(sql)
    db.close()


def _rows(path: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute(
            "SELECT id, lifecycle, owner, lease_token, lease_expires, crashes, started_s "
            "FROM tasks ORDER BY id"
        ).fetchall()
    finally:
        db.close()


def _claimed(path: Path, one_statement: bool, alone: bool, ids: list[str]) -> list[Any]:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        if not alone:
            db.execute("BEGIN IMMEDIATE")
        if one_statement:
            leases = start_rows(db, ids, TOKENS, "p1", NOW, EXPIRES, alone=alone)
        else:
            leases = claim_rows(db, ids, "p1", NOW, EXPIRES, start=True)
        if not alone:
            db.execute("COMMIT")
        return sorted(leases, key=lambda lease: lease.task_id)
    finally:
        db.close()


@pytest.mark.parametrize("alone", [True, False], ids=["own-transaction", "in-a-group"])
@pytest.mark.parametrize(
    "ids",
    [IDS, ["fresh1", "fresh2", "mine"], ["taken", "done"], ["gone"]],
    ids=["mixed", "all-as-expected", "none-free", "missing"],
)
async def test_one_statement_starts_exactly_what_the_general_claim_starts(
    tmp_path: Path, alone: bool, ids: list[str]
) -> None:
    await _file(tmp_path / "made.db")
    fast, general = tmp_path / "fast.db", tmp_path / "general.db"
    shutil.copy(tmp_path / "made.db", fast)
    shutil.copy(tmp_path / "made.db", general)
    assert _claimed(fast, True, alone, ids) == _claimed(general, False, alone, ids)
    assert _rows(fast) == _rows(general)


async def test_the_grants_are_the_expected_ones(tmp_path: Path) -> None:
    path = tmp_path / "made.db"
    await _file(path)
    granted = {x.task_id: (x.token, x.crashes) for x in _claimed(path, True, True, IDS)}
    assert granted == {
        "fresh1": (1, 0),
        "fresh2": (1, 0),
        "mine": (2, 0),
        "stale_guess": (4, 0),
        "crashed": (2, 1),
    }
    states = {row[0]: row[1] for row in _rows(path)}
    assert [i for i in IDS if states.get(i) == "RUNNING"] == sorted(granted, key=IDS.index)
