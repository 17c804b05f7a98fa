"""SQLiteStore's parts: the schema, rows, error mapping and settings."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import aiosqlite
import orjson

from asched.errors import (
    ConfigError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    TaskValidationError,
)
from asched.model import RECORD_VERSION, TERMINAL_STATES, Task, TaskLifecycle
from asched.model.codec import encode_record
from asched.stores.base import LEASE_ENDING_STATES, Lease

logger = logging.getLogger("asched.stores.sqlite")

Row = tuple[Any, ...]

#: One entry per schema version, applied in order from version 1 on.  Never
#: edit a released entry; append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE tasks (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            lifecycle TEXT NOT NULL,
            due_s REAL NOT NULL,
            priority INTEGER NOT NULL,
            idempotency_key TEXT UNIQUE,
            updated_s REAL NOT NULL,
            version INTEGER NOT NULL,
            record TEXT NOT NULL
        )""",
        "CREATE INDEX tasks_by_state ON tasks (lifecycle, due_s, priority)",
        # Type alone: an index holding due_s or priority would be rewritten by every save.
        "CREATE INDEX tasks_by_type ON tasks (type)",
    ),
    (
        """CREATE TABLE schedules (
            id TEXT PRIMARY KEY,
            updated_s REAL NOT NULL,
            version INTEGER NOT NULL,
            record TEXT NOT NULL
        )""",
    ),
    (
        # Leases: NULL owner and lease_expires when free; the token is never reset.
        "ALTER TABLE tasks ADD COLUMN owner TEXT",
        "ALTER TABLE tasks ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE tasks ADD COLUMN lease_expires REAL",
        # Unfinished work only, in claim order: claim_due reads it in order, no sort.
        "CREATE INDEX tasks_claimable ON tasks (priority, due_s) WHERE "
        "lifecycle IN ('QUEUED', 'SCHEDULED', 'RETRYING', 'RUNNING')",
        # Leased rows only, for the heartbeat.
        "CREATE INDEX tasks_by_owner ON tasks (owner) WHERE owner IS NOT NULL",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
#: Exactly the text of the ``tasks_claimable`` condition: SQLite uses a partial
#: index only for a query that repeats it.
CLAIMABLE_SQL = "lifecycle IN ('QUEUED', 'SCHEDULED', 'RETRYING', 'RUNNING')"

_COLUMNS = "id, type, lifecycle, due_s, priority, idempotency_key, updated_s, version, record"
INSERT_SQL = f"INSERT INTO tasks ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
UPDATE_SQL = (
    "UPDATE tasks SET lifecycle = ?, due_s = ?, priority = ?, updated_s = ?, "
    "version = ?, record = ? WHERE id = ?"
)
ORDER_SQL = " ORDER BY due_s, priority, rowid"
UPSERT_SCHEDULE_SQL = (
    "INSERT INTO schedules (id, updated_s, version, record) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET updated_s = excluded.updated_s, "
    "version = excluded.version, record = excluded.record"
)
DELETE_SCHEDULE_SQL = "DELETE FROM schedules WHERE id = ?"
UNFINISHED_SQL = ", ".join(f"'{s.name}'" for s in TaskLifecycle if s not in TERMINAL_STATES)

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
_URL_OPTIONS = {"synchronous": str, "busy_timeout_ms": int, "busy_deadline_s": float}
_PRAGMA_NAME = re.compile(r"[a-z_]+")
_PRAGMA_VALUE = re.compile(r"-?\d+|[A-Za-z_]+")
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_NOTADB = 5, 6, 11, 13, 26


def encode_insert(tasks: Sequence[Task], now_s: float) -> list[Row]:
    """The rows of one insert call, encoded up front so a bad task fails only its caller."""
    rows = []
    for task in tasks:
        try:
            rows.append(_insert_row(task, now_s))
        except (ValueError, OverflowError, OSError) as exc:
            raise TaskValidationError("task", task.id, f"cannot be stored: {exc}") from exc
    return rows


class SaveRow(NamedTuple):
    """One task's queued save: the UPDATE parameters, and the lease fencing it."""

    task_id: str
    lease: Lease | None
    ends_lease: bool
    row: Row


def encode_saves(
    tasks: Mapping[str, Task], fences: Mapping[str, Lease], now_s: float
) -> list[SaveRow]:
    saves = []
    for task_id, task in tasks.items():
        try:
            row = _update_row(task, now_s)
        except (ValueError, OverflowError, OSError):
            logger.exception("task %r cannot be stored; its state change is not saved", task_id)
            continue
        ends = task.lifecycle in LEASE_ENDING_STATES
        saves.append(SaveRow(task_id, fences.get(task_id), ends, row))
    return saves


def _insert_row(task: Task, now_s: float) -> Row:
    return (
        task.id,
        task.type,
        task.lifecycle.name,
        task.due_s,
        task.priority.value,
        task.idempotency_key,
        now_s,
        RECORD_VERSION,
        encode_record(task).decode(),
    )


def _update_row(task: Task, now_s: float) -> Row:
    return (
        task.lifecycle.name,
        task.due_s,
        task.priority.value,
        now_s,
        RECORD_VERSION,
        encode_record(task).decode(),
        task.id,
    )


def encode_schedules(records: Sequence[Mapping[str, Any]]) -> dict[str, tuple[int, str] | None]:
    """Schedule records by id, as (version, JSON); a bad record fails the whole call."""
    encoded: dict[str, tuple[int, str] | None] = {}
    for record in records:
        schedule_id = record.get("id")
        if not isinstance(schedule_id, str) or not schedule_id:
            raise TaskValidationError("schedule.id", schedule_id, "expected a non-empty string")
        version = record.get("version", 1)
        try:
            text = orjson.dumps(record).decode()
        except TypeError as exc:
            raise TaskValidationError("schedule", schedule_id, f"not JSON ({exc})") from None
        encoded[schedule_id] = (version if isinstance(version, int) else 1, text)
    return encoded


def check_batch(tasks: Sequence[Task]) -> None:
    """Duplicates inside one batch, found before anything is queued."""
    if len(tasks) == 1:
        return
    ids: set[str] = set()
    keys: set[str] = set()
    for task in tasks:
        if task.id in ids:
            raise TaskValidationError("task_id", task.id, "used twice in one batch")
        ids.add(task.id)
        key = task.idempotency_key
        if key is not None:
            if key in keys:
                raise TaskValidationError("idempotency_key", key, "used twice in one batch")
            keys.add(key)


async def name_conflict(
    db: aiosqlite.Connection, tasks: Sequence[Task], exc: sqlite3.IntegrityError
) -> TaskValidationError:
    """Which task of a failed batch clashed with a stored one, as a validation error."""
    if "UNIQUE" not in str(exc):
        return TaskValidationError("task", tasks[0].id, f"cannot be stored: {exc}")
    by_key = "idempotency_key" in str(exc)
    column = "idempotency_key" if by_key else "id"
    values = [t.idempotency_key if by_key else t.id for t in tasks]
    wanted = [v for v in values if v is not None]
    rows = await db.execute_fetchall(
        f"SELECT {column} FROM tasks WHERE {column} IN (SELECT value FROM json_each(?))",
        (orjson.dumps(wanted).decode(),),
    )
    taken = {row[0] for row in rows}
    clash = next((v for v in wanted if v in taken), None)
    if by_key:
        return TaskValidationError("idempotency_key", clash, "already used")
    return TaskValidationError("task_id", clash, "already exists")


async def migrate(db: aiosqlite.Connection, path: str) -> None:
    """Bring the file's schema up to ``SCHEMA_VERSION`` in one transaction."""
    await db.execute("BEGIN IMMEDIATE")
    try:
        cursor = await db.execute("PRAGMA user_version")
        row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"sqlite store {path}: schema version {current} is newer than "
                f"this asched supports ({SCHEMA_VERSION}); upgrade asched"
            )
        for statements in MIGRATIONS[current:]:
            for statement in statements:
                await db.execute(statement)
        if current != SCHEMA_VERSION:
            await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        await db.execute("COMMIT")
    except BaseException:
        await rollback(db)
        raise


def make_parent_dir(path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def require_open(db: aiosqlite.Connection | None) -> aiosqlite.Connection:
    if db is None:
        raise StoreError("sqlite store is not open")
    return db


async def rollback(db: aiosqlite.Connection) -> None:
    """Roll back if a transaction is still open (SQLite may have ended it already)."""
    if db.in_transaction:
        try:
            await db.execute("ROLLBACK")
        except sqlite3.Error:
            logger.exception("sqlite store: rollback failed")


def error_code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", -1)) & 0xFF


def store_error(exc: sqlite3.Error, path: str) -> StoreError:
    code = error_code(exc)
    if code == SQLITE_FULL:
        return StoreFullError(f"sqlite store {path}: the disk or database is full ({exc})")
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return StoreCorruptError(f"sqlite store {path}: the database file is damaged ({exc})")
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return StoreBusyError(f"sqlite store {path}: the database is locked ({exc})")
    return StoreError(f"sqlite store {path}: {exc}")


def unexpected_error(exc: Exception, path: str) -> StoreError:
    logger.error("sqlite store %s: write failed", path, exc_info=exc)
    error = StoreError(f"sqlite store {path}: write failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def parse_url(url: str) -> tuple[str, dict[str, Any]]:
    """``sqlite:///relative.db`` or ``sqlite:////abs.db`` (+ ``?option=value``) to
    (path, options)."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme.lower() != "sqlite":
        raise ConfigError("store_url", url, "expected sqlite:///relative.db or sqlite:////abs.db")
    path, _, query = rest.partition("?")
    options: dict[str, Any] = {}
    for name, raw in parse_qsl(query, keep_blank_values=True):
        kind = _URL_OPTIONS.get(name)
        if kind is None:
            known = ", ".join(_URL_OPTIONS)
            raise ConfigError("store_url", url, f"unknown option {name!r}; one of {known}")
        try:
            options[name] = kind(raw)
        except ValueError:
            raise ConfigError("store_url", url, f"bad value for {name}: {raw!r}") from None
    if not path:
        raise ConfigError("store_url", url, "missing the database file path")
    return path, options


def check_busy(timeout_ms: Any, deadline_s: Any) -> tuple[int, float]:
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms < 0:
        raise ConfigError("busy_timeout_ms", timeout_ms, "expected an integer >= 0")
    if isinstance(deadline_s, bool) or not isinstance(deadline_s, int | float):
        raise ConfigError("busy_deadline_s", deadline_s, "expected a number >= 0")
    if not deadline_s >= 0:
        raise ConfigError("busy_deadline_s", deadline_s, "expected a number >= 0")
    return timeout_ms, float(deadline_s)


def check_synchronous(value: Any) -> str:
    mode = value.upper() if isinstance(value, str) else value
    if mode not in SYNCHRONOUS_MODES:
        raise ConfigError("synchronous", value, f"one of {', '.join(SYNCHRONOUS_MODES)}")
    return str(mode)


def check_pragmas(pragmas: Mapping[str, int | str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for name, value in pragmas.items():
        text = str(value)
        if not _PRAGMA_NAME.fullmatch(name) or not _PRAGMA_VALUE.fullmatch(text):
            raise ConfigError("pragmas", {name: value}, "expected a name and an int or word")
        checked[name] = text
    return checked
