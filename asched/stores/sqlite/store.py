"""SQLiteStore: tasks in one SQLite file (see :mod:`asched.stores.sqlite` for how
it writes, reads, leases and keeps the file)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sqlite3
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from asched.clock import monotonic
from asched.errors import ConfigError, StoreBusyError, StoreError
from asched.model import Task
from asched.stores.base import Lease, Store
from asched.stores.sqlite.cluster import ClusterRows
from asched.stores.sqlite.connection import MIGRATIONS, SCHEMA_VERSION, migrate
from asched.stores.sqlite.dbthread import DbThread
from asched.stores.sqlite.files import (
    SQLITE_BUSY,
    SQLITE_LOCKED,
    check_asched,
    check_whole,
    connect,
    create_private,
    error_code,
    store_error,
)
from asched.stores.sqlite.group import LeaseOp
from asched.stores.sqlite.leases import (
    NEXT_DUE_SQL,
    Claimed,
    claim_due_rows,
    claim_rows,
    earliest,
    keep_alive_rows,
    release_rows,
    renew_rows,
    start_rows,
)
from asched.stores.sqlite.reads import TaskReader
from asched.stores.sqlite.retention import purge_rows
from asched.stores.sqlite.rules import SQLiteRules
from asched.stores.sqlite.settings import (
    SYNCHRONOUS_MODES,
    check_busy,
    check_pragmas,
    check_synchronous,
    parse_url,
)
from asched.stores.sqlite.writer import GroupWriter

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SQLiteStore"]

logger = logging.getLogger("asched.stores.sqlite")
T = TypeVar("T")
#: what a heartbeat found: the (id, token) leases extended, and the expired ids
Renewal = tuple[list[tuple[str, int]], list[str]]
_KEEP_ALIVE_WAIT_S = 5.0


def _same(value: T) -> T:
    return value


class SQLiteStore(ClusterRows, TaskReader, SQLiteRules, Store):
    durable = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 250,
        busy_deadline_s: float = 10.0,
        pragmas: Mapping[str, int | str] | None = None,
        rng: random.Random | None = None,
        read_only: bool = False,
    ) -> None:
        """``busy_timeout_ms`` is how long SQLite itself waits for a lock on each try;
        past it the store retries with jittered backoff until ``busy_deadline_s``,
        then raises :class:`StoreBusyError`.  ``pragmas`` are extra PRAGMAs set on
        every connection (e.g. ``{"cache_size": -20000}``).  ``read_only`` opens
        the file for reading only (see the module docstring)."""
        super().__init__()
        self.path = os.fspath(path)
        if not self.path or self.path == ":memory:" or self.path.startswith("file:"):
            raise ConfigError("path", self.path, "expected a file path (use memory:// for RAM)")
        self.synchronous = check_synchronous(synchronous)
        self.busy_timeout_ms, self.busy_deadline_s = check_busy(busy_timeout_ms, busy_deadline_s)
        self._pragmas = check_pragmas(pragmas or {})
        self._rng = rng or random.Random()
        self.read_only = bool(read_only)
        #: Unreadable rows skipped (see also ``commits`` and ``rows_written``).
        self.corrupt_rows = 0
        self._commits = 0
        self._rows_written = 0
        self._writer: DbThread | None = None
        self._reader: DbThread | None = None
        self._groups: GroupWriter | None = None
        self._closing = False
        self._data_version: int | None = None

    @classmethod
    def from_url(cls, url: str, *, read_only: bool = False) -> SQLiteStore:
        """``sqlite:///relative.db`` or ``sqlite:////abs/path.db``, with optional
        ``?synchronous=FULL&busy_timeout_ms=250&busy_deadline_s=10``."""
        path, options = parse_url(url)
        return cls(path, read_only=read_only, **options)

    @property
    def commits(self) -> int:
        """Successful write transactions so far."""
        return self._commits + (self._groups.commits if self._groups else 0)

    @property
    def rows_written(self) -> int:
        return self._rows_written + (self._groups.rows_written if self._groups else 0)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, synchronous={self.synchronous!r})"

    # -- opening and closing ---------------------------------------------------------

    async def open(self) -> None:
        if self._reader is not None:
            return
        if self.read_only:
            self._reader = await asyncio.to_thread(self._start_thread, "reader", True)
            return
        await asyncio.to_thread(create_private, self.path)
        self._closing = False
        self._writer = await asyncio.to_thread(self._start_thread, "writer", False)
        try:
            await self._retry_busy(lambda: self._on_writer(self._prepare))
            self._reader = await asyncio.to_thread(self._start_thread, "reader", True)
        except BaseException:
            await self._disconnect()
            raise
        self._groups = GroupWriter(
            self._writer,
            self.path,
            self._held,
            self.busy_deadline_s,
            self._rng,
            lambda: self.max_payload_bytes,
        )

    def _start_thread(self, role: str, reads: bool) -> DbThread:
        return DbThread(f"asched-sqlite-{role}", partial(self._connect, reads))

    def _connect(self, reads: bool) -> sqlite3.Connection:
        db = connect(self.path, read_only=reads and self.read_only)
        try:
            check_whole(db, self.path)
            if reads and self.read_only:
                check_asched(db, self.path)
            for name, value in (
                ("synchronous", self.synchronous),
                ("busy_timeout", self.busy_timeout_ms),
                *self._pragmas.items(),
            ):
                db.execute(f"PRAGMA {name} = {value}")
        except sqlite3.Error as exc:
            db.close()
            raise store_error(exc, self.path) from None
        except BaseException:
            db.close()
            raise
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()
        if not mode or mode[0] != "wal":
            logger.warning("sqlite store %s: journal_mode is %r, not 'wal'", self.path, mode)
        migrate(db, self.path)
        self._data_version = int(db.execute("PRAGMA data_version").fetchone()[0])

    async def close(self) -> None:
        """Write everything queued, then close both connections."""
        groups = self._groups
        if groups is not None:
            self._closing = True
            await groups.drained()
            self._commits += groups.commits
            self._rows_written += groups.rows_written
            self._groups = None
        await self._disconnect()

    async def _disconnect(self) -> None:
        threads = [t for t in (self._reader, self._writer) if t is not None]
        self._reader = self._writer = None
        for thread in threads:
            await asyncio.to_thread(thread.close)

    async def _on_writer(self, work: Callable[[sqlite3.Connection], T]) -> T:
        writer = self._writer
        if writer is None:
            raise StoreError(f"sqlite store {self.path} is not open for writing")
        return await writer.call(work)

    async def describe(self) -> dict[str, Any]:
        """The settings in force on the writer connection, for operators and tests."""

        def pragmas(db: sqlite3.Connection) -> dict[str, Any]:
            names = ("journal_mode", "synchronous", "busy_timeout", "user_version", "auto_vacuum")
            return {name: db.execute(f"PRAGMA {name}").fetchone()[0] for name in names}

        found: dict[str, Any] = {"path": self.path, **await self._on_writer(pragmas)}
        found["synchronous"] = SYNCHRONOUS_MODES[found["synchronous"]]
        found.update(commits=self.commits, rows_written=self.rows_written)
        found["corrupt_rows"] = self.corrupt_rows
        return found

    # -- writing ---------------------------------------------------------------------

    async def insert(self, tasks: Sequence[Task]) -> None:
        if tasks:
            await self.insert_soon(tasks)

    def insert_soon(self, tasks: Sequence[Task]) -> asyncio.Future[None]:
        """The insert queued now (errors in the tasks raise here), committed when
        the future is done."""
        if not tasks:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return self._writes().insert(tasks, self.max_payload_bytes)

    async def save(
        self, tasks: Sequence[Task], leases: Mapping[str, Lease] | None = None
    ) -> list[str]:
        if not tasks:
            return []
        groups = self._writes()
        future = groups.open_group.add_saves(tasks, leases)
        groups.kick_soon()
        return await future

    def _writes(self) -> GroupWriter:
        groups = self._groups
        if groups is None or self._closing:
            state = "read-only" if self.read_only else "not open"
            raise StoreError(f"sqlite store {self.path} is {state}")
        return groups

    def _queue_op(self, op: LeaseOp[Any, T]) -> asyncio.Future[T]:
        groups = self._writes()
        future = groups.open_group.add_lease_op(op)
        groups.kick()
        return future

    # -- leases: the small steps (see asched.stores.sqlite.leases) ----------------------

    async def _claim(
        self, task_ids: list[str], owner: str, now_s: float, expires_s: float
    ) -> list[Lease]:
        op: LeaseOp[list[Lease], list[Lease]] = LeaseOp(
            lambda db: claim_rows(db, task_ids, owner, now_s, expires_s), _same
        )
        return await self._queue_op(op)

    async def _claim_start(
        self, task_ids: list[str], owner: str, now_s: float, expires_s: float
    ) -> list[Lease]:
        tokens = self._held.tokens(owner, task_ids)
        op: LeaseOp[list[Lease], list[Lease]] = LeaseOp(
            lambda db: start_rows(db, task_ids, tokens, owner, now_s, expires_s, alone=False),
            _same,
            task_ids,
            lambda db: start_rows(db, task_ids, tokens, owner, now_s, expires_s, alone=True),
        )
        return await self._queue_op(op)

    async def _claim_due(
        self,
        owner: str,
        now_s: float,
        expires_s: float,
        limit: int,
        exclude: Collection[str],
        task_types: frozenset[str] | None,
    ) -> list[tuple[Lease, Task | None]]:
        skip = list(exclude)
        op = LeaseOp(
            lambda db: claim_due_rows(db, owner, now_s, expires_s, limit, skip, task_types),
            self._decoded,
        )
        return await self._queue_op(op)

    async def _next_due_s(self, owner: str, now_s: float) -> float | None:
        rows = await self._read(NEXT_DUE_SQL, {"owner": owner, "now": now_s})
        return earliest(rows[0])

    async def _renew(self, owner: str, now_s: float, expires_s: float) -> Renewal:
        op: LeaseOp[Renewal, Renewal] = LeaseOp(
            lambda db: renew_rows(db, owner, now_s, expires_s, sweep=True), _same
        )
        return await self._queue_op(op)

    async def _release(self, leases: list[Lease]) -> None:
        op: LeaseOp[None, None] = LeaseOp(lambda db: release_rows(db, leases), _same)
        await self._queue_op(op)

    def _decoded(self, claimed: list[Claimed]) -> list[tuple[Lease, Task | None]]:
        return [
            (
                c.lease,
                self._decode(c.lease.task_id, c.record, c.lifecycle, c.started_s, c.data, c.result),
            )
            for c in claimed
        ]

    def _keep_alive(self, owner: str, now_s: float, expires_s: float) -> int | None:
        writer = self._writer
        if writer is None:
            return None
        work = partial(keep_alive_rows, owner=owner, now_s=now_s, expires_s=expires_s)
        try:
            return writer.call_blocking(work, _KEEP_ALIVE_WAIT_S)
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from None

    async def changed_elsewhere(self) -> bool | None:
        def version(db: sqlite3.Connection) -> int:
            return int(db.execute("PRAGMA data_version").fetchone()[0])

        current = await self._retry_busy(lambda: self._on_writer(version))
        changed = current != self._data_version
        self._data_version = current
        return changed

    # -- retention ---------------------------------------------------------------------

    async def _purge_finished(
        self,
        before_s: float,
        limit: int,
        task_types: list[str] | None,
        exclude_types: list[str],
    ) -> int:
        await self._barrier()
        work = partial(
            purge_rows, before_s=before_s, limit=limit, only=task_types, skip=exclude_types
        )
        deleted = await self._retry_busy(lambda: self._on_writer(work))
        if deleted:
            self._commits += 1
        return deleted

    # -- reading (the queries are in asched.stores.sqlite.reads) -------------------------

    async def _read(self, sql: str, params: Iterable[Any] | Mapping[str, Any]) -> list[Any]:
        await self._barrier()
        reader = self._reader
        if reader is None:
            raise StoreError(f"sqlite store {self.path} is not open")
        return await self._retry_busy(lambda: reader.call(partial(_fetch, sql, params)))

    async def _barrier(self) -> None:
        """Wait until every write queued before this read is committed."""
        if self._groups is not None:
            await self._groups.barrier()

    # -- errors ----------------------------------------------------------------------

    async def _retry_busy(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt``, retrying SQLITE_BUSY with jittered backoff until the deadline."""
        deadline = monotonic() + self.busy_deadline_s
        delay_s = 0.005
        while True:
            try:
                return await attempt()
            except sqlite3.Error as exc:
                if error_code(exc) not in (SQLITE_BUSY, SQLITE_LOCKED):
                    raise store_error(exc, self.path) from None
                left_s = deadline - monotonic()
                if left_s <= 0:
                    raise StoreBusyError(
                        f"sqlite store {self.path}: database stayed locked for "
                        f"{self.busy_deadline_s:g}s ({exc})"
                    ) from None
                await asyncio.sleep(min(left_s, delay_s * (0.5 + self._rng.random())))
                delay_s = min(delay_s * 2, 0.25)


def _fetch(sql: str, params: Any, db: sqlite3.Connection) -> list[Any]:
    return db.execute(sql, params).fetchall()
