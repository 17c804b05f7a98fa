"""SQLiteStore's group commit: what one transaction writes, and who waits on it.

Callers queue into the open :class:`WriteGroup`; the writer coroutine swaps it
for a fresh one and runs it with :func:`run_group` -- one call on the database
thread, so one hop -- in one ``BEGIN IMMEDIATE``:
inserts, then saves (fenced ones checked against the leases held), then lease
statements, then schedule records.  Concurrent callers have no order among
themselves, so any order inside a group is a valid one.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from asched.errors import StoreError, TaskValidationError
from asched.model import Task
from asched.stores.base import Lease
from asched.stores.sqlite.bulk import pieces, values
from asched.stores.sqlite.connection import (
    DATA_SQL,
    DELETE_SCHEDULE_SQL,
    INSERT_SQL,
    RESULT_SQL,
    UPSERT_SCHEDULE_SQL,
    InsertRows,
    Row,
    SaveRow,
    name_conflict,
    rollback,
)
from asched.stores.sqlite.saves import write_saves

R = TypeVar("R")
V = TypeVar("V")


def run_group(
    db: sqlite3.Connection,
    calls: list[InsertCall],
    saves: list[SaveRow],
    ops: list[LeaseOp[Any, Any]],
    schedules: tuple[list[Row], list[Row]],
) -> GroupOutcome:
    """One group's writes in one transaction; rolled back whole on any error."""
    if len(calls) == 1 and not (saves or ops or schedules[0] or schedules[1]):
        return _insert_only(db, calls[0])
    db.execute("BEGIN IMMEDIATE")
    try:
        errors = insert_calls(db, calls)
        refused = write_saves(db, saves) if saves else set()
        results = [op.run(db) for op in ops]
        for sql, rows in ((UPSERT_SCHEDULE_SQL, schedules[0]), (DELETE_SCHEDULE_SQL, schedules[1])):
            if rows:
                db.executemany(sql, rows)
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise
    return GroupOutcome(errors, refused, results)


def _insert_only(db: sqlite3.Connection, call: InsertCall) -> GroupOutcome:
    """The common lone ``schedule_task``: no savepoint needed, the call is the group."""
    db.execute("BEGIN IMMEDIATE")
    try:
        _write_inserts(db, call.rows)
        db.execute("COMMIT")
    except sqlite3.IntegrityError as exc:
        rollback(db)
        return GroupOutcome([name_conflict(db, call.tasks, exc)], set(), [])
    except BaseException:
        rollback(db)
        raise
    return GroupOutcome([None], set(), [])


class GroupOutcome(NamedTuple):
    """What one group transaction did: per insert call, its error or None; the
    fenced saves refused; per lease op, its result."""

    errors: list[TaskValidationError | None]
    refused: set[str]
    results: list[Any]


def insert_calls(
    db: sqlite3.Connection, calls: list[InsertCall]
) -> list[TaskValidationError | None]:
    """All calls' rows in one executemany; on a conflict, each call alone."""
    if not calls:
        return []
    db.execute("SAVEPOINT group_insert")
    try:
        if len(calls) == 1:
            _write_inserts(db, calls[0].rows)
        else:
            _write_inserts(db, _joined([call.rows for call in calls]))
    except sqlite3.IntegrityError:
        db.execute("ROLLBACK TO group_insert")
    else:
        db.execute("RELEASE group_insert")
        return [None] * len(calls)
    db.execute("RELEASE group_insert")
    return [_insert_alone(db, call.tasks, call.rows) for call in calls]


def _write_inserts(db: sqlite3.Connection, rows: InsertRows) -> None:
    for sql, table in ((INSERT_SQL, rows.tasks), (DATA_SQL, rows.data), (RESULT_SQL, rows.results)):
        if table:
            width = len(table[0])
            for count, params in pieces(table):
                db.execute(sql + values(count, width), params)


def _joined(parts: list[InsertRows]) -> InsertRows:
    return InsertRows(
        tuple(row for rows in parts for row in rows.tasks),
        tuple(row for rows in parts for row in rows.data),
        tuple(row for rows in parts for row in rows.results),
    )


def _insert_alone(
    db: sqlite3.Connection, tasks: Sequence[Task], rows: InsertRows
) -> TaskValidationError | None:
    db.execute("SAVEPOINT call_insert")
    try:
        _write_inserts(db, rows)
    except sqlite3.IntegrityError as exc:
        db.execute("ROLLBACK TO call_insert")
        db.execute("RELEASE call_insert")
        return name_conflict(db, tasks, exc)
    db.execute("RELEASE call_insert")
    return None


class InsertCall:
    __slots__ = ("future", "rows", "tasks")

    def __init__(
        self, tasks: Sequence[Task], rows: InsertRows, future: asyncio.Future[None]
    ) -> None:
        self.tasks = tasks
        self.rows = rows
        self.future = future

    def settle(self, error: Exception | None) -> None:
        if not self.future.done():
            if error is None:
                self.future.set_result(None)
            else:
                self.future.set_exception(error)


class LeaseOp(Generic[R, V]):
    """A lease statement queued for the next group: ``run`` inside its transaction,
    ``finish`` on the result once committed (before anything else is written)."""

    __slots__ = ("finish", "future", "run", "starts")

    def __init__(
        self,
        run: Callable[[sqlite3.Connection], R],
        finish: Callable[[R], V],
        starts: Sequence[str] | None = None,
    ) -> None:
        self.run = run
        self.finish = finish
        #: the tasks a start-claim without start rules asks for (None: any other op)
        self.starts = starts
        self.future: asyncio.Future[V] = asyncio.get_running_loop().create_future()

    def settle(self, result: R) -> None:
        if self.future.done():
            return
        try:
            value = self.finish(result)
        except Exception as exc:  # never let it reach (and stop) the writer coroutine
            self.future.set_exception(exc)
        else:
            self.future.set_result(value)

    def fail(self, error: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class WriteGroup:
    """Writes queued for one transaction, and the callers waiting on it."""

    __slots__ = (
        "done_event",
        "fences",
        "inserts",
        "lease_ops",
        "rows",
        "save_calls",
        "saves",
        "schedule_futures",
        "schedules",
    )

    def __init__(self) -> None:
        self.inserts: list[InsertCall] = []
        self.saves: dict[str, Task] = {}
        #: task id -> the lease its queued save is fenced by (the last save wins)
        self.fences: dict[str, Lease] = {}
        #: each save call's future, with the ids it fenced
        self.save_calls: list[tuple[asyncio.Future[list[str]], list[str]]] = []
        self.lease_ops: list[LeaseOp[Any, Any]] = []
        #: schedule id -> (record version, record as JSON), or None to delete it
        self.schedules: dict[str, tuple[int, str] | None] = {}
        self.schedule_futures: list[asyncio.Future[None]] = []
        self.done_event = asyncio.Event()
        #: about how many rows the group writes (a lease statement counts as one)
        self.rows = 0

    def __bool__(self) -> bool:
        return bool(self.inserts or self.saves or self.lease_ops or self.schedules)

    def add_insert(self, tasks: Sequence[Task], rows: InsertRows) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inserts.append(InsertCall(tasks, rows, future))
        self.rows += len(tasks)
        return future

    def add_saves(
        self, tasks: Sequence[Task], leases: Mapping[str, Lease] | None
    ) -> asyncio.Future[list[str]]:
        saves, fences = self.saves, self.fences
        fenced: list[str] = []
        for task in tasks:
            saves[task.id] = task
            lease = leases.get(task.id) if leases else None
            if lease is not None:
                fences[task.id] = lease
                fenced.append(task.id)
            elif fences:
                fences.pop(task.id, None)
        future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self.save_calls.append((future, fenced))
        self.rows += len(tasks)
        return future

    def take_starts(self) -> WriteGroup | None:
        """The start-claims queued ahead of any other lease statement, for tasks this
        group neither inserts nor saves, moved to a group of their own (None if
        none): committed first, their handlers run while the rest is written."""
        ops = self.lease_ops
        if not (self.saves or self.inserts) or not ops or ops[0].starts is None:
            return None
        saves = self.saves
        inserted = {task.id for call in self.inserts for task in call.tasks}
        count = 0
        for op in ops:
            ids = op.starts
            if ids is None or any(i in saves or i in inserted for i in ids):
                break
            count += 1
        if not count:
            return None
        first = WriteGroup()
        first.lease_ops, self.lease_ops = ops[:count], ops[count:]
        first.rows, self.rows = count, self.rows - count
        return first

    def add_lease_op(self, op: LeaseOp[R, V]) -> asyncio.Future[V]:
        self.lease_ops.append(op)
        self.rows += 1
        return op.future

    def add_schedules(self, changes: Mapping[str, tuple[int, str] | None]) -> asyncio.Future[None]:
        self.schedules.update(changes)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.schedule_futures.append(future)
        return future

    def schedule_rows(self, now_s: float) -> tuple[list[Row], list[Row]]:
        """(upserts, deletes) for the schedules table."""
        upserts: list[Row] = []
        deletes: list[Row] = []
        for schedule_id, change in self.schedules.items():
            if change is None:
                deletes.append((schedule_id,))
            else:
                upserts.append((schedule_id, now_s, *change))
        return upserts, deletes

    def succeed(self, refused: set[str]) -> None:
        for future, fenced in self.save_calls:
            if not future.done():
                future.set_result([i for i in fenced if i in refused] if refused else [])
        for done in self.schedule_futures:
            if not done.done():
                done.set_result(None)

    def fail(self, error: StoreError) -> None:
        for call in self.inserts:
            call.settle(error)
        for op in self.lease_ops:
            op.fail(error)
        futures: list[asyncio.Future[Any]] = [f for f, _ in self.save_calls]
        for future in (*futures, *self.schedule_futures):
            if not future.done():
                future.set_exception(error)

    def finish(self) -> None:
        self.done_event.set()
