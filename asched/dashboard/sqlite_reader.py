"""The dashboard's reads on a SQLite store, answered from its indexes.

A separate read-only connection (WAL lets it read beside the writer), used on
a worker thread one query at a time, runs
queries the Store contract does not offer: counts grouped by state, type and
priority are index-only scans (``tasks_by_state``, ``tasks_by_type``,
``tasks_claimable``); a page of tasks picks its row ids from an index, in due
order, before any record is read; the forecast reads five columns of the
pending rows, not their records.  No query reads every record of the store.
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
    Counts,
    Page,
    PendingRun,
    TaskQuery,
    TaskReader,
)
from asched.model import Task, TaskLifecycle, TaskPriority
from asched.stores.base import Store

logger = logging.getLogger(__name__)

_PENDING_SQL = ", ".join(f"'{s.name}'" for s in PENDING_STATES)
#: Exactly the SQLite store's partial-index condition, so the planner uses it.
_CLAIMABLE_SQL = "lifecycle IN ('QUEUED', 'SCHEDULED', 'RETRYING', 'RUNNING')"
_PRIORITY_NAMES = {p.value: p.name for p in TaskPriority}
_STATES = TaskLifecycle.__members__
_TAG_SQL = "EXISTS (SELECT 1 FROM json_each(record, '$.metadata.tags') WHERE value = ?)"


class SQLiteReader(TaskReader):
    def __init__(self, store: Store, path: str) -> None:
        super().__init__(store)
        self.path = path
        self._db: sqlite3.Connection | None = None
        # A thread lock, not an asyncio one: a cancelled request leaves its query
        # running on the worker thread, and close() must wait for it.
        self._lock = threading.Lock()

    async def open(self) -> None:
        """Nothing to do: the connection opens on the first query, once the store
        has created the database."""

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return await asyncio.to_thread(self._run, sql, params)

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        with self._lock:
            if self._db is None:
                uri = f"file:{quote(str(Path(self.path).resolve()))}?mode=ro"
                db = sqlite3.connect(uri, uri=True, check_same_thread=False)
                db.execute("PRAGMA busy_timeout = 1000")
                self._db = db
            return self._db.execute(sql, params).fetchall()

    async def page(self, query: TaskQuery) -> Page:
        where, params = _filters(query)
        direction = "DESC" if query.newest_first else "ASC"
        order = f" ORDER BY due_s {direction}, priority, rowid {direction}"
        picked = f"SELECT rowid FROM tasks{where}{order} LIMIT ? OFFSET ?"
        sql = f"SELECT id, record FROM tasks WHERE rowid IN ({picked}){order}"
        rows = await self._rows(sql, (*params, query.limit + 1, query.offset))
        tasks = [t for t in (_decode(i, r) for i, r in rows[: query.limit]) if t is not None]
        return Page(tasks, len(rows) > query.limit)

    async def counts(self, now_s: float) -> Counts:
        by_state = await self._rows("SELECT lifecycle, COUNT(*) FROM tasks GROUP BY lifecycle")
        by_type = await self._rows("SELECT type, COUNT(*) FROM tasks GROUP BY type")
        claimable = await self._rows(
            f"SELECT priority, COUNT(*) FROM tasks WHERE {_CLAIMABLE_SQL} GROUP BY priority"
        )
        paused = await self._rows(
            "SELECT priority, COUNT(*) FROM tasks WHERE lifecycle = 'PAUSED' GROUP BY priority"
        )
        due = await self._rows(
            f"SELECT COUNT(*) FROM tasks WHERE lifecycle IN ({_PENDING_SQL}) AND due_s <= ?",
            (now_s,),
        )
        by_priority: dict[str, int] = {}
        for value, n in [*claimable, *paused]:
            name = _PRIORITY_NAMES.get(value, str(value))
            by_priority[name] = by_priority.get(name, 0) + int(n)
        ordered = sorted(by_state, key=lambda row: _STATES.get(row[0], 99))
        return Counts(
            by_state={str(name): int(n) for name, n in ordered},
            by_type={str(name): int(n) for name, n in by_type},
            by_priority=dict(sorted(by_priority.items(), key=lambda kv: _priority_rank(kv[0]))),
            due_now=int(due[0][0]),
        )

    async def pending(self, until_s: float) -> list[PendingRun]:
        rows = await self._rows(
            "SELECT id, type, priority, due_s, lifecycle FROM tasks "
            f"WHERE lifecycle IN ({_PENDING_SQL}) AND due_s < ?",
            (until_s,),
        )
        return [
            PendingRun(str(i), str(kind), TaskPriority(p), float(due), _STATES[state])
            for i, kind, p, due, state in rows
        ]

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


def _decode(task_id: Any, record: Any) -> Task | None:
    try:
        return Task.from_json(record)
    except Exception:
        logger.warning("task %r: unreadable record skipped", task_id)
        return None
