"""SQLiteStore's group commit: what one transaction writes, and who waits on it.

Callers queue into the open :class:`WriteGroup`; the writer swaps it for a
fresh one and runs it with :func:`run_group` -- one call on the database
thread, so one hop -- in one ``BEGIN IMMEDIATE``: inserts, then saves (fenced
ones checked against the leases held), then lease statements, then schedule
records.  A group that one statement writes whole (task rows alone, a
start-claim alone) is that statement, atomic on its own: no BEGIN, no COMMIT.
Concurrent callers have no order among themselves, so any order inside a group
is a valid one.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, Generic, NamedTuple, TypeVar

from asched.errors import StoreError, TaskValidationError
from asched.model import Task
from asched.stores.base import Lease
from asched.stores.sqlite.bulk import PADDED_ROWS, padded_pieces, pieces, values
from asched.stores.sqlite.connection import (
    DATA_SQL,
    DELETE_SCHEDULE_SQL,
    INSERT_SQL,
    PADDED_INSERT_SQL,
    RESULT_SQL,
    UPSERT_SCHEDULE_SQL,
    InsertRows,
    Row,
    SaveRow,
    name_conflict,
    rollback,
)
from asched.stores.sqlite.lone import LoneInserts, LoneRows
from asched.stores.sqlite.saves import write_saves

R = TypeVar("R")
V = TypeVar("V")


def run_group(
    db: sqlite3.Connection,
    calls: list[InsertCall],
    lone: LoneRows,
    saves: list[SaveRow],
    ops: list[LeaseOp[Any, Any]],
    schedules: tuple[list[Row], list[Row]],
) -> GroupOutcome:
    """One group's writes in one transaction (or one statement); rolled back whole
    on any error."""
    if not (saves or ops or schedules[0] or schedules[1]):
        outcome = _inserts_only(db, calls, lone)
        if outcome is not None:
            return outcome
    elif len(ops) == 1 and ops[0].alone and not (saves or calls or lone.tasks or any(schedules)):
        return GroupOutcome([], _NO_ERRORS, set(), [ops[0].alone(db)])
    db.execute("BEGIN IMMEDIATE")
    try:
        errors, lone_errors = insert_calls(db, calls, lone)
        refused = write_saves(db, saves) if saves else set()
        results = [op.run(db) for op in ops]
        for sql, rows in ((UPSERT_SCHEDULE_SQL, schedules[0]), (DELETE_SCHEDULE_SQL, schedules[1])):
            if rows:
                db.executemany(sql, rows)
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise
    return GroupOutcome(errors, lone_errors, refused, results)


def _inserts_only(
    db: sqlite3.Connection, calls: list[InsertCall], lone: LoneRows
) -> GroupOutcome | None:
    """A group of inserts alone, without savepoints: all rows, then COMMIT (or one
    statement, see :func:`_one_insert`).  None after a conflict (nothing written):
    the group then runs again, call by call."""
    rows = _all_rows(calls, lone)
    if len(rows.tasks) <= PADDED_ROWS and not (rows.data or rows.results):
        return _one_insert(db, rows.tasks, len(calls))
    db.execute("BEGIN IMMEDIATE")
    try:
        _write_inserts(db, rows)
        db.execute("COMMIT")
    except sqlite3.IntegrityError:
        rollback(db)
        return None
    except BaseException:
        rollback(db)
        raise
    return GroupOutcome([None] * len(calls), _NO_ERRORS, set(), [])


_NO_ERRORS: dict[int, TaskValidationError] = {}


class GroupOutcome(NamedTuple):
    """What one group transaction did: per insert call, its error or None; the
    errors of lone inserts, by index; the fenced saves refused; per lease op,
    its result."""

    errors: list[TaskValidationError | None]
    lone_errors: dict[int, TaskValidationError]
    refused: set[str]
    results: list[Any]


def insert_calls(
    db: sqlite3.Connection, calls: list[InsertCall], lone: LoneRows
) -> tuple[list[TaskValidationError | None], dict[int, TaskValidationError]]:
    """All calls' rows at once; on a conflict, each call alone."""
    if not (calls or lone.tasks):
        return [], _NO_ERRORS
    db.execute("SAVEPOINT group_insert")
    try:
        _write_inserts(db, _all_rows(calls, lone))
    except sqlite3.IntegrityError:
        db.execute("ROLLBACK TO group_insert")
    else:
        db.execute("RELEASE group_insert")
        return [None] * len(calls), _NO_ERRORS
    db.execute("RELEASE group_insert")
    errors = [_insert_alone(db, call.tasks, call.rows) for call in calls]
    data: dict[str, bytes] = dict(lone.data)
    lone_errors: dict[int, TaskValidationError] = {}
    for index, (task, row) in enumerate(zip(lone.tasks, lone.rows, strict=True)):
        own = ((task.id, data[task.id]),) if task.id in data else ()
        error = _insert_alone(db, (task,), InsertRows((row,), own, ()))
        if error is not None:
            lone_errors[index] = error
    return errors, lone_errors


def _all_rows(calls: list[InsertCall], lone: LoneRows) -> InsertRows:
    parts = [call.rows for call in calls]
    if lone.tasks:
        parts.append(InsertRows(tuple(lone.rows), tuple(lone.data), ()))
    return _joined(parts)


def _one_insert(db: sqlite3.Connection, rows: Sequence[Row], calls: int) -> GroupOutcome | None:
    """Task rows without data or results, as one statement: atomic on its own, so
    no BEGIN nor COMMIT -- one step, where the loop is busy one wait for the GIL."""
    count, params = next(padded_pieces(rows, len(rows[0])))
    try:
        db.execute(_padded_insert(count, len(rows[0])), params)
    except sqlite3.IntegrityError:
        return None
    return GroupOutcome([None] * calls, _NO_ERRORS, set(), [])


@cache
def _padded_insert(count: int, width: int) -> str:
    return PADDED_INSERT_SQL.format(values=values(count, width))


def _write_inserts(db: sqlite3.Connection, rows: InsertRows) -> None:
    for sql, table in ((INSERT_SQL, rows.tasks), (DATA_SQL, rows.data), (RESULT_SQL, rows.results)):
        if table:
            width = len(table[0])
            for count, params in pieces(table):
                db.execute(sql + values(count, width), params)


def _joined(parts: list[InsertRows]) -> InsertRows:
    if len(parts) == 1:
        return parts[0]
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
    ``finish`` on the result once committed (before anything else is written);
    ``alone``, if given, instead of ``run`` when the group holds nothing else: it
    makes its own transaction, if it needs one."""

    __slots__ = ("alone", "finish", "future", "run", "starts")

    def __init__(
        self,
        run: Callable[[sqlite3.Connection], R],
        finish: Callable[[R], V],
        starts: Sequence[str] | None = None,
        alone: Callable[[sqlite3.Connection], R] | None = None,
    ) -> None:
        self.run = run
        self.alone = alone
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
        "lone",
        "rows",
        "save_calls",
        "saves",
        "schedule_futures",
        "schedules",
    )

    def __init__(self) -> None:
        self.inserts: list[InsertCall] = []
        self.lone = LoneInserts()
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
        return bool(
            self.inserts or self.lone.tasks or self.saves or self.lease_ops or self.schedules
        )

    def add_insert(self, tasks: Sequence[Task], rows: InsertRows) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inserts.append(InsertCall(tasks, rows, future))
        self.rows += len(tasks)
        return future

    def add_lone(self, task: Task, row: Row, data: Row | None) -> asyncio.Future[None]:
        """A one-task insert call (see :class:`LoneInserts`)."""
        self.rows += 1
        return self.lone.add(task, row, data)

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

    def take_starts(self, ahead: bool = False) -> WriteGroup | None:
        """The start-claims queued ahead of any other lease statement, for tasks this
        group neither inserts nor saves, moved to a group of their own (None if
        none): committed first, their handlers run while the rest is written.
        ``ahead``: taken even from a group of lease statements only, to be sent
        while other groups are in flight (the rest waits its turn)."""
        ops = self.lease_ops
        if not (ahead or self.saves or self.inserts or self.lone.tasks):
            return None
        if not ops or ops[0].starts is None:
            return None
        saves = self.saves
        inserted = {task.id for call in self.inserts for task in call.tasks}
        inserted.update(task.id for task in self.lone.tasks)
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
        self.lone.fail(error)
        for op in self.lease_ops:
            op.fail(error)
        futures: list[asyncio.Future[Any]] = [f for f, _ in self.save_calls]
        for future in (*futures, *self.schedule_futures):
            if not future.done():
                future.set_exception(error)

    def finish(self) -> None:
        self.done_event.set()
