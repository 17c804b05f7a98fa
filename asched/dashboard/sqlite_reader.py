"""The dashboard's reads on a SQLite store, answered from its indexes.

A separate read-only connection (WAL lets it read beside the writer), used on
a worker thread one query at a time, runs
queries the Store contract does not offer: counts grouped by state, type and
priority are index-only scans (``tasks_by_state``, ``tasks_by_type``,
``tasks_claimable``); a page of tasks picks its row ids from an index, in an
order an index serves, before any record is read; the forecast counts the
pending rows per bucket, type and priority inside SQLite.  No query reads
every record of the store.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from asched.dashboard.queries import (
    PENDING_STATES,
    BucketCount,
    Counts,
    ForecastQuery,
    Page,
    PendingRun,
    TaskQuery,
    TaskReader,
)
from asched.model import Task, TaskLifecycle, TaskPriority
from asched.stores.base import Store
from asched.stores.sqlite.reads import ROW_COLUMNS, decode_row

logger = logging.getLogger(__name__)

_PENDING_SQL = ", ".join(f"'{s.name}'" for s in PENDING_STATES)
#: Exactly the SQLite store's partial-index condition, so the planner uses it.
_CLAIMABLE_SQL = "lifecycle IN ('QUEUED', 'SCHEDULED', 'RETRYING', 'RUNNING')"
_PRIORITY_NAMES = {p.value: p.name for p in TaskPriority}
_STATES = TaskLifecycle.__members__
#: Each order is one an index serves: the table's rowid (creation order), or
#: ``tasks_by_state``/``tasks_by_type`` once a state or type is chosen.
_ORDER_SQL = {
    "newest": " ORDER BY rowid DESC",
    "due": " ORDER BY due_s, priority, rowid",
    "due_desc": " ORDER BY due_s DESC, priority DESC, rowid DESC",
}
_TAG_SQL = "EXISTS (SELECT 1 FROM json_each(record, '$.metadata.tags') WHERE value = ?)"


class SQLiteReader(TaskReader):
    #: Read connections used at once: a quick query need not wait behind a slow one.
    connections = 3

    def __init__(self, store: Store, path: str) -> None:
        super().__init__(store)
        self.path = path
        self._idle: list[sqlite3.Connection] = []
        self._opened = 0
        self._closed = False
        # A thread condition, not an asyncio lock: a cancelled request leaves its
        # query running on a worker thread, and close() must wait for it.
        self._free = threading.Condition()

    async def open(self) -> None:
        """Nothing to do: connections open on first use, once the store has
        created the database."""

    async def close(self) -> None:
        await asyncio.to_thread(self._close_all)

    def _close_all(self) -> None:
        with self._free:
            self._closed = True
            while len(self._idle) < self._opened:
                self._free.wait()
            for db in self._idle:
                db.close()
            self._idle.clear()
            self._opened = 0
            self._closed = False

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return await asyncio.to_thread(self._run, sql, params)

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        db = self._take()
        try:
            return db.execute(sql, params).fetchall()
        finally:
            with self._free:
                self._idle.append(db)
                self._free.notify_all()

    def _take(self) -> sqlite3.Connection:
        with self._free:
            while not self._idle and (self._opened >= self.connections or self._closed):
                self._free.wait()
            if self._idle:
                return self._idle.pop()
            self._opened += 1
        try:
            return self._connect()
        except BaseException:
            with self._free:
                self._opened -= 1
                self._free.notify_all()
            raise

    def _connect(self) -> sqlite3.Connection:
        uri = f"file:{quote(str(Path(self.path).resolve()))}?mode=ro"
        db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 1000")
        return db

    async def page(self, query: TaskQuery) -> Page:
        where, params = _filters(query)
        order = _ORDER_SQL[query.order]
        picked = f"SELECT rowid FROM tasks{where}{order} LIMIT ? OFFSET ?"
        sql = f"SELECT id, {ROW_COLUMNS} FROM tasks WHERE rowid IN ({picked}){order}"
        rows = await self._rows(sql, (*params, query.limit + 1, query.offset))
        tasks = [t for t in (_decode(*row) for row in rows[: query.limit]) if t is not None]
        return Page(tasks, len(rows) > query.limit)

    async def state_counts(self, now_s: float) -> Counts:
        by_state, due = await asyncio.gather(
            self._rows("SELECT lifecycle, COUNT(*) FROM tasks GROUP BY lifecycle"),
            self._rows(
                f"SELECT COUNT(*) FROM tasks WHERE lifecycle IN ({_PENDING_SQL}) AND due_s <= ?",
                (now_s,),
            ),
        )
        ordered = sorted(by_state, key=lambda row: _STATES.get(row[0], 99))
        return Counts(by_state={str(name): int(n) for name, n in ordered}, due_now=int(due[0][0]))

    async def counts(self, now_s: float) -> Counts:
        states = asyncio.ensure_future(self.state_counts(now_s))
        by_type, claimable, paused = await asyncio.gather(
            self._rows("SELECT type, COUNT(*) FROM tasks GROUP BY type"),
            self._rows(
                f"SELECT priority, COUNT(*) FROM tasks WHERE {_CLAIMABLE_SQL} GROUP BY priority"
            ),
            self._rows(
                "SELECT priority, COUNT(*) FROM tasks WHERE lifecycle = 'PAUSED' GROUP BY priority"
            ),
        )
        counts = await states
        by_priority: dict[str, int] = {}
        for value, n in [*claimable, *paused]:
            name = _PRIORITY_NAMES.get(value, str(value))
            by_priority[name] = by_priority.get(name, 0) + int(n)
        counts.by_type = {str(name): int(n) for name, n in by_type}
        counts.by_priority = dict(sorted(by_priority.items(), key=lambda kv: _priority_rank(kv[0])))
        return counts

    async def pending(self, query: ForecastQuery) -> tuple[list[BucketCount], list[PendingRun]]:
        where = f"WHERE lifecycle IN ({_PENDING_SQL}) AND due_s < ?"
        params: tuple[Any, ...] = (query.until_s,)
        if query.task_type is not None:
            where += " AND type = ?"
            params += (query.task_type,)
        grouped = await self._rows(
            "SELECT MAX(0, CAST((due_s - ?) / ? AS INTEGER)) AS bucket, type, priority, "
            f"COUNT(*) FROM tasks {where} GROUP BY bucket, type, priority",
            (query.origin_s, query.bucket_s, *params),
        )
        first = await self._rows(
            f"SELECT due_s, priority, id, type FROM tasks {where} ORDER BY due_s, priority LIMIT ?",
            (*params, query.upcoming),
        )
        counts = [(int(b), str(kind), TaskPriority(p), int(n)) for b, kind, p, n in grouped]
        runs = [PendingRun(float(d), TaskPriority(p), str(i), str(k)) for d, p, i, k in first]
        return counts, runs

    async def lease_owners(self, now_s: float) -> list[dict[str, Any]]:
        rows = await self._rows(
            "SELECT owner, COUNT(*), MAX(lease_expires) FROM tasks "
            "WHERE owner IS NOT NULL AND lease_expires > ? GROUP BY owner",
            (now_s,),
        )
        return [
            {"id": owner, "leased_tasks": int(n), "lease_expires_s": float(expires)}
            for owner, n, expires in rows
        ]


def _filters(query: TaskQuery) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.state is not None:
        clauses.append("lifecycle = ?")
        params.append(query.state.name)
    if query.task_type is not None:
        clauses.append("type = ?")
        params.append(query.task_type)
    if query.key is not None:
        clauses.append("json_extract(record, '$.concurrency_key') = ?")
        params.append(query.key)
    if query.tag is not None:
        clauses.append(_TAG_SQL)
        params.append(query.tag)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    return where, tuple(params)


def _priority_rank(name: str) -> int:
    member = TaskPriority.__members__.get(name)
    return 99 if member is None else member.value


def _decode(task_id: Any, *row: Any) -> Task | None:
    try:
        return decode_row(*row)
    except Exception:
        logger.warning("task %r: unreadable record skipped", task_id)
        return None
