"""SQLiteStore: tasks in one SQLite file, written by group commit.

Durability.  The file runs in WAL mode.  With ``synchronous="NORMAL"`` (the
default) a commit is in the WAL file before ``insert``/``save`` return, so an
acknowledged write survives a crash or SIGKILL of this process; the last
commits before a power loss or OS crash may be lost (SQLite fsyncs only at
checkpoints).  ``synchronous="FULL"`` fsyncs every commit and survives power
loss too, at the cost of one fsync per group.

Group commit.  ``insert`` and ``save`` only queue their rows and wait.  One
writer coroutine takes everything queued since its last commit and writes it
in a single ``BEGIN IMMEDIATE … COMMIT``, so thousands of concurrent
``schedule_task`` calls cost a handful of commits.  Each ``insert`` call stays
all-or-nothing: a duplicate id or idempotency key fails that call only (it is
retried alone inside a SAVEPOINT), never its neighbours in the group.

Locks.  Every write transaction is ``BEGIN IMMEDIATE``: a deferred one that
later needs the write lock fails at once with "database is locked", without
waiting.  SQLite waits ``busy_timeout_ms`` for a lock on each try; past that
the store retries with jittered backoff until ``busy_deadline_s``, then raises
:class:`StoreBusyError`.  A full disk raises :class:`StoreFullError`.

Reads use a second connection, which in WAL mode never waits for the writer,
and first wait for every write queued before them (read-your-writes).

Leases.  ``claim``, ``claim_due``, ``renew`` and ``release`` queue like saves
and run inside the same group transaction, so the write lock makes each one
atomic against every process on the file; fenced saves are checked against the
lease columns in that transaction too (see ``_sqlite_leases``).

Layout: ``tasks`` holds the columns the engine filters and sorts on, plus the
whole record as JSON text (the :meth:`Task.to_dict` shape, never pickle) with
its ``version``; ``schedules`` holds recurring-schedule records the same way.
``PRAGMA user_version`` is the schema version; ``MIGRATIONS`` upgrades older
files on open.  A row that cannot be read is logged, counted in
``corrupt_rows`` and skipped, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import aiosqlite
import orjson

from asched.errors import (
    ConfigError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    TaskValidationError,
)
from asched.model import Task, TaskLifecycle
from asched.stores.base import Lease, Store
from asched.stores.sqlite.connection import (
    MIGRATIONS,
    ORDER_SQL,
    SCHEMA_VERSION,
    SQLITE_BUSY,
    SQLITE_LOCKED,
    SYNCHRONOUS_MODES,
    UNFINISHED_SQL,
    check_batch,
    check_busy,
    check_pragmas,
    check_synchronous,
    encode_insert,
    encode_saves,
    encode_schedules,
    error_code,
    make_parent_dir,
    migrate,
    parse_url,
    require_open,
    store_error,
    unexpected_error,
)
from asched.stores.sqlite.group import LeaseOp, WriteGroup, run_group
from asched.stores.sqlite.leases import (
    NEXT_DUE_SQL,
    Claimed,
    claim_due_rows,
    claim_rows,
    earliest,
    release_rows,
    renew_rows,
)

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SQLiteStore"]


#: what a heartbeat found: the (id, token) leases extended, and the expired ids
Renewal = tuple[list[tuple[str, int]], list[str]]


def _same(value: T) -> T:
    return value


logger = logging.getLogger(__name__)

T = TypeVar("T")


class SQLiteStore(Store):
    """A durable store in one SQLite file; see the module docstring for the guarantees."""

    durable = True
    shares_objects = False

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 250,
        busy_deadline_s: float = 10.0,
        pragmas: Mapping[str, int | str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__()
        """``busy_timeout_ms`` is how long SQLite itself waits for a lock on each try;
        past it the store retries with jittered backoff until ``busy_deadline_s``,
        then raises :class:`StoreBusyError`.  ``pragmas`` are extra PRAGMAs set on
        every connection (e.g. ``{"cache_size": -20000}``)."""
        self.path = os.fspath(path)
        if not self.path or self.path == ":memory:" or self.path.startswith("file:"):
            raise ConfigError("path", self.path, "expected a file path (use memory:// for RAM)")
        self.synchronous = check_synchronous(synchronous)
        self.busy_timeout_ms, self.busy_deadline_s = check_busy(busy_timeout_ms, busy_deadline_s)
        self._pragmas = check_pragmas(pragmas or {})
        self._rng = rng or random.Random()
        #: Successful write transactions, rows they wrote, and unreadable rows skipped.
        self.commits = 0
        self.rows_written = 0
        self.corrupt_rows = 0
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._open_group = WriteGroup()
        self._inflight: WriteGroup | None = None
        self._closing = False

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """``sqlite:///relative.db`` or ``sqlite:////abs/path.db``, with optional
        ``?synchronous=FULL&busy_timeout_ms=250&busy_deadline_s=10``."""
        path, options = parse_url(url)
        return cls(path, **options)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, synchronous={self.synchronous!r})"

    # -- opening and closing ---------------------------------------------------------

    async def open(self) -> None:
        if self._writer_task is not None:
            return
        await asyncio.to_thread(make_parent_dir, self.path)
        self._closing = False
        self._wake = asyncio.Event()
        self._open_group = WriteGroup()
        self._writer = await self._connect()
        try:
            await self._enable_wal(self._writer)
            await self._retry_busy(lambda: migrate(require_open(self._writer), self.path))
            self._reader = await self._connect()
        except BaseException:
            await self._disconnect()
            raise
        self._writer_task = asyncio.get_running_loop().create_task(self._write_forever())

    def background_tasks(self) -> list[asyncio.Task[None]]:
        """The writer: if it dies, the scheduler using this store fails loudly."""
        return [] if self._writer_task is None else [self._writer_task]

    async def close(self) -> None:
        """Write everything queued, then close both connections."""
        writer_task = self._writer_task
        if writer_task is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await writer_task  # raises what stopped the writer, if it died
        finally:
            self._writer_task = None
            await self._disconnect()

    async def _connect(self) -> aiosqlite.Connection:
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise store_error(exc, self.path) from exc
        try:
            for name, value in (
                ("synchronous", self.synchronous),
                ("busy_timeout", self.busy_timeout_ms),
                *self._pragmas.items(),
            ):
                await db.execute_fetchall(f"PRAGMA {name} = {value}")
        except BaseException:
            await db.close()
            raise
        return db

    async def _disconnect(self) -> None:
        for db in (self._reader, self._writer):
            if db is not None:
                await db.close()
        self._reader = self._writer = None

    async def _enable_wal(self, db: aiosqlite.Connection) -> None:
        async def switch() -> Any:
            cursor = await db.execute("PRAGMA journal_mode = WAL")
            return await cursor.fetchone()

        row = await self._retry_busy(switch)
        mode = row[0] if row else None
        if mode != "wal":
            logger.warning("sqlite store %s: journal_mode is %r, not 'wal'", self.path, mode)

    async def describe(self) -> dict[str, Any]:
        """The settings in force on the writer connection, for operators and tests."""
        db = require_open(self._writer)
        found: dict[str, Any] = {"path": self.path}
        for name in ("journal_mode", "synchronous", "busy_timeout", "user_version"):
            rows = list(await db.execute_fetchall(f"PRAGMA {name}"))
            found[name] = rows[0][0] if rows else None
        found["synchronous"] = SYNCHRONOUS_MODES[found["synchronous"]]
        found.update(commits=self.commits, rows_written=self.rows_written)
        found["corrupt_rows"] = self.corrupt_rows
        return found

    # -- writing ---------------------------------------------------------------------

    async def insert(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        check_batch(tasks)
        rows = encode_insert(tasks, time.time())
        future = self._queue().add_insert(tasks, rows)
        await future

    async def save(
        self, tasks: Sequence[Task], leases: Mapping[str, Lease] | None = None
    ) -> list[str]:
        if not tasks:
            return []
        return await self._queue().add_saves(tasks, leases)

    def _queue(self) -> WriteGroup:
        if self._writer_task is None or self._closing:
            raise StoreError(f"sqlite store {self.path} is not open")
        if self._writer_task.done():
            raise StoreError(f"sqlite store {self.path}: its writer has stopped")
        self._wake.set()
        return self._open_group

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._open_group:
                group, self._open_group = self._open_group, WriteGroup()
                self._inflight = group
                try:
                    await self._commit_group(group)
                except BaseException as exc:
                    # The writer is dying: no caller may wait on it forever.
                    stopped = StoreError(f"sqlite store {self.path}: its writer stopped ({exc!r})")
                    group.fail(stopped)
                    self._open_group.fail(stopped)
                    raise
                finally:
                    self._inflight = None
                    group.finish()
            if self._closing:
                return

    async def _commit_group(self, group: WriteGroup) -> None:
        """Write one group in one transaction and tell every caller how it went."""
        calls, ops = group.inserts, group.lease_ops
        now_s = time.time()
        saves = encode_saves(group.saves, group.fences, now_s)
        schedules = group.schedule_rows(now_s)
        try:
            outcome = await self._retry_busy(
                lambda: run_group(require_open(self._writer), calls, saves, ops, schedules)
            )
        except Exception as exc:
            failure = exc if isinstance(exc, StoreError) else unexpected_error(exc, self.path)
            group.fail(failure)
            return
        self.commits += 1
        self.rows_written += len(saves) - len(outcome.refused)
        for call, error in zip(calls, outcome.errors, strict=True):
            call.settle(error)
            if error is None:
                self.rows_written += len(call.rows)
        self._held.drop(
            s.lease for s in saves if s.lease and s.ends_lease and s.task_id not in outcome.refused
        )
        for op, result in zip(ops, outcome.results, strict=True):
            op.settle(result)
        group.succeed(outcome.refused)

    # -- leases: the small steps (see asched.stores.sqlite.leases) ----------------------

    async def _claim(
        self, task_ids: list[str], owner: str, now_s: float, expires_s: float
    ) -> list[Lease]:
        op: LeaseOp[list[Lease], list[Lease]] = LeaseOp(
            lambda db: claim_rows(db, task_ids, owner, now_s, expires_s), _same
        )
        return await self._queue().add_lease_op(op)

    async def _claim_due(
        self, owner: str, now_s: float, expires_s: float, limit: int, exclude: Collection[str]
    ) -> list[tuple[Lease, Task | None]]:
        skip = list(exclude)
        op = LeaseOp(
            lambda db: claim_due_rows(db, owner, now_s, expires_s, limit, skip), self._decoded
        )
        return await self._queue().add_lease_op(op)

    async def _next_due_s(self, owner: str, now_s: float) -> float | None:
        rows = await self._read(NEXT_DUE_SQL, {"owner": owner, "now": now_s})
        return earliest(rows[0])

    async def _renew(
        self, owner: str, now_s: float, expires_s: float
    ) -> tuple[list[tuple[str, int]], list[str]]:
        op: LeaseOp[
            tuple[list[tuple[str, int]], list[str]], tuple[list[tuple[str, int]], list[str]]
        ]
        op = LeaseOp(lambda db: renew_rows(db, owner, now_s, expires_s), _same)
        return await self._queue().add_lease_op(op)

    async def _release(self, leases: list[Lease]) -> None:
        op: LeaseOp[None, None] = LeaseOp(lambda db: release_rows(db, leases), _same)
        await self._queue().add_lease_op(op)

    def _decoded(self, claimed: list[Claimed]) -> list[tuple[Lease, Task | None]]:
        return [(lease, self._decode(lease.task_id, record)) for lease, _, record in claimed]

    # -- recurring schedules -----------------------------------------------------------

    async def save_schedules(self, records: Sequence[dict[str, Any]]) -> None:
        if records:
            await self._queue().add_schedules(encode_schedules(records))

    async def delete_schedules(self, schedule_ids: Sequence[str]) -> None:
        if schedule_ids:
            await self._queue().add_schedules(dict.fromkeys(schedule_ids))

    async def load_schedules(self) -> list[dict[str, Any]]:
        records = []
        for schedule_id, text in await self._read("SELECT id, record FROM schedules", ()):
            try:
                record = orjson.loads(text)
                if not isinstance(record, dict):
                    raise TypeError(f"expected a JSON object, not {type(record).__name__}")
            except (orjson.JSONDecodeError, TypeError) as exc:
                self._report_corrupt("schedule", schedule_id, exc)
                continue
            records.append(record)
        return records

    # -- reading ---------------------------------------------------------------------

    async def get(self, task_id: str) -> Task | None:
        rows = await self._read("SELECT id, record FROM tasks WHERE id = ?", (task_id,))
        if not rows:
            return None
        task = self._decode(rows[0][0], rows[0][1])
        if task is None:
            raise StoreCorruptError(f"sqlite store {self.path}: task {task_id!r} is unreadable")
        return task

    async def find_by_idempotency_key(self, key: str) -> str | None:
        rows = await self._read("SELECT id FROM tasks WHERE idempotency_key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def list_tasks(
        self,
        status: TaskLifecycle | None = None,
        task_type: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("lifecycle = ?")
            params.append(status.name)
        if task_type is not None:
            where.append("type = ?")
            params.append(task_type)
        sql = "SELECT id, record FROM tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += ORDER_SQL + " LIMIT ?"
        params.append(-1 if limit is None else limit)
        return self._decode_all(await self._read(sql, params))

    async def load_unfinished(self) -> list[Task]:
        sql = f"SELECT id, record FROM tasks WHERE lifecycle IN ({UNFINISHED_SQL})" + ORDER_SQL
        return self._decode_all(await self._read(sql, ()))

    async def count_by_state(self) -> dict[TaskLifecycle, int]:
        rows = await self._read("SELECT lifecycle, COUNT(*) FROM tasks GROUP BY lifecycle", ())
        counts: dict[TaskLifecycle, int] = {}
        for name, count in rows:
            state = TaskLifecycle.__members__.get(name)
            if state is None:
                logger.warning(
                    "sqlite store %s: unknown lifecycle %r in %d rows", self.path, name, count
                )
            else:
                counts[state] = int(count)
        return counts

    async def _read(self, sql: str, params: Iterable[Any]) -> list[Any]:
        await self._barrier()
        db = self._reader
        if db is None:
            raise StoreError(f"sqlite store {self.path} is not open")
        return list(await self._retry_busy(lambda: db.execute_fetchall(sql, params)))

    async def _barrier(self) -> None:
        """Wait until every write queued before this read is committed."""
        group = self._open_group if self._open_group else self._inflight
        if group is not None:
            await group.done_event.wait()

    def _decode_all(self, rows: list[Any]) -> list[Task]:
        tasks = []
        for task_id, record in rows:
            task = self._decode(task_id, record)
            if task is not None:
                tasks.append(task)
        return tasks

    def _decode(self, task_id: str, record: Any) -> Task | None:
        """The task, or None (logged and counted) when the row cannot be read."""
        try:
            task = Task.from_json(record)
            if task.id != task_id:
                raise TaskValidationError("id", task.id, f"does not match the row id {task_id!r}")
        except Exception as exc:
            self._report_corrupt("task", task_id, exc)
            return None
        return task

    def _report_corrupt(self, kind: str, row_id: str, exc: Exception) -> None:
        self.corrupt_rows += 1
        logger.warning("sqlite store %s: skipping corrupt %s %r: %s", self.path, kind, row_id, exc)

    # -- errors ----------------------------------------------------------------------

    async def _retry_busy(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt``, retrying SQLITE_BUSY with jittered backoff until the deadline."""
        deadline = time.monotonic() + self.busy_deadline_s
        delay_s = 0.005
        while True:
            try:
                return await attempt()
            except sqlite3.Error as exc:
                if error_code(exc) not in (SQLITE_BUSY, SQLITE_LOCKED):
                    raise store_error(exc, self.path) from exc
                left_s = deadline - time.monotonic()
                if left_s <= 0:
                    raise StoreBusyError(
                        f"sqlite store {self.path}: database stayed locked for "
                        f"{self.busy_deadline_s:g}s ({exc})"
                    ) from exc
                await asyncio.sleep(min(left_s, delay_s * (0.5 + self._rng.random())))
                delay_s = min(delay_s * 2, 0.25)
