"""SQLiteStore's schema and rows: migrations, statements, and encoding tasks as rows.

All of it is synchronous: it runs on the store's database thread (see
:mod:`asched.stores.sqlite.dbthread`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import orjson

from asched.errors import StoreError, TaskValidationError
from asched.model import TERMINAL_STATES, Task, TaskLifecycle
from asched.model.codec import encode_result
from asched.model.compact import COMPACT_VERSION, encode_compact
from asched.stores.base import DEFAULT_MAX_PAYLOAD_BYTES, LEASE_ENDING_STATES, Lease, check_payload

logger = logging.getLogger("asched.stores.sqlite")
T = TypeVar("T")

Row = tuple[Any, ...]

_TERMINAL = ", ".join(f"'{s.name}'" for s in TERMINAL_STATES)
TERMINAL_SQL = _TERMINAL

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
    (
        # Attempts whose worker went away before saving an outcome (counted when
        # the next claim finds the row still RUNNING with its lease run out).
        "ALTER TABLE tasks ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0",
        # When a task finished, for retention; finished rows only.
        "ALTER TABLE tasks ADD COLUMN finished_s REAL",
        f"UPDATE tasks SET finished_s = updated_s WHERE lifecycle IN ({_TERMINAL})",
        "CREATE INDEX tasks_finished ON tasks (finished_s) WHERE finished_s IS NOT NULL",
    ),
    (
        # Every insert and save paid for it; tasks_claimable serves next_due_s now.
        "DROP INDEX tasks_by_state",
    ),
    (
        # Cluster control: the worker registry, and cancel/pause requests for tasks
        # another worker holds (one per task, taken by the lease's owner).
        """CREATE TABLE workers (
            id TEXT PRIMARY KEY,
            started_s REAL NOT NULL,
            heartbeat_s REAL NOT NULL,
            running INTEGER NOT NULL DEFAULT 0,
            record TEXT NOT NULL
        )""",
        """CREATE TABLE control_requests (
            task_id TEXT PRIMARY KEY,
            action TEXT NOT NULL,
            record TEXT NOT NULL
        )""",
    ),
    (
        # Payloads apart from state, so a state save never rewrites them (SQLite
        # rewrites a whole row on any UPDATE): task data is written once, at
        # insert; a result once, when the task completes.  Empty data ({}) and
        # no result have no row.  ``record`` keeps the rest (model/codec.py).
        "CREATE TABLE task_data (id TEXT PRIMARY KEY, data BLOB NOT NULL)",
        "CREATE TABLE task_results (id TEXT PRIMARY KEY, result BLOB NOT NULL)",
        "INSERT INTO task_data SELECT id, CAST(json_extract(record, '$.data') AS BLOB) "
        "FROM tasks WHERE json_extract(record, '$.data') != '{}'",
        # A result as JSON text, whatever its type (17 digits keep a float exact).
        "INSERT INTO task_results SELECT id, CAST(CASE json_type(record, '$.result') "
        "WHEN 'real' THEN printf('%!.17g', json_extract(record, '$.result')) "
        "WHEN 'text' THEN json_quote(json_extract(record, '$.result')) "
        "WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
        "ELSE json_extract(record, '$.result') END AS BLOB) "
        "FROM tasks WHERE json_type(record, '$.result') != 'null'",
        # The table is rebuilt (rowids kept) to make idempotency keys unique by a
        # partial index: a task without a key then writes no entry for it.
        """CREATE TABLE tasks_rebuilt (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            lifecycle TEXT NOT NULL,
            due_s REAL NOT NULL,
            priority INTEGER NOT NULL,
            idempotency_key TEXT,
            updated_s REAL NOT NULL,
            version INTEGER NOT NULL,
            record TEXT NOT NULL,
            owner TEXT,
            lease_token INTEGER NOT NULL DEFAULT 0,
            lease_expires REAL,
            crashes INTEGER NOT NULL DEFAULT 0,
            finished_s REAL
        )""",
        "INSERT INTO tasks_rebuilt (rowid, id, type, lifecycle, due_s, priority, "
        "idempotency_key, updated_s, version, record, owner, lease_token, lease_expires, "
        "crashes, finished_s) SELECT rowid, id, type, lifecycle, due_s, priority, "
        "idempotency_key, updated_s, version, json_remove(record, '$.data', '$.result'), "
        "owner, lease_token, lease_expires, crashes, finished_s FROM tasks",
        "DROP TABLE tasks",
        "ALTER TABLE tasks_rebuilt RENAME TO tasks",
        "CREATE UNIQUE INDEX tasks_by_idempotency_key ON tasks (idempotency_key) "
        "WHERE idempotency_key IS NOT NULL",
        "CREATE INDEX tasks_by_type ON tasks (type)",
        "CREATE INDEX tasks_claimable ON tasks (priority, due_s) WHERE "
        "lifecycle IN ('QUEUED', 'SCHEDULED', 'RETRYING', 'RUNNING')",
        "CREATE INDEX tasks_by_owner ON tasks (owner) WHERE owner IS NOT NULL",
        "CREATE INDEX tasks_finished ON tasks (finished_s) WHERE finished_s IS NOT NULL",
        "CREATE TRIGGER tasks_payloads_gone AFTER DELETE ON tasks BEGIN "
        "DELETE FROM task_data WHERE id = old.id; "
        "DELETE FROM task_results WHERE id = old.id; END",
    ),
    (
        # Cluster-wide start rules (asched.stores.sqlite.slots): the concurrency slots
        # each started attempt holds (held while its task is RUNNING under that lease
        # token), GCRA rate budgets, and shared circuit breaker records.
        "CREATE TABLE slots (name TEXT NOT NULL, task_id TEXT NOT NULL, "
        "token INTEGER NOT NULL, PRIMARY KEY (name, task_id)) WITHOUT ROWID",
        "CREATE INDEX slots_by_task ON slots (task_id)",
        "CREATE TABLE rate_budgets (key TEXT PRIMARY KEY, tat REAL NOT NULL) WITHOUT ROWID",
        "CREATE TABLE breakers (name TEXT PRIMARY KEY, updated_s REAL NOT NULL, "
        "record TEXT NOT NULL) WITHOUT ROWID",
    ),
    (
        # When the last start-claim started the task: a claim writes this, not the
        # record (rewriting the record cost more than the rest of the claim); a
        # read takes it when it is newer than the record's start.  Records from
        # here on may be the compact form (version 2, asched.model.compact).
        "ALTER TABLE tasks ADD COLUMN started_s REAL",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
#: Exactly the text of the ``tasks_claimable`` condition: SQLite uses a partial
#: index only for a query that repeats it.
CLAIMABLE_SQL = "lifecycle IN ('QUEUED', 'SCHEDULED', 'RETRYING', 'RUNNING')"

_COLUMNS = "id, type, lifecycle, due_s, priority, idempotency_key, updated_s, version, record"
INSERT_SQL = f"INSERT INTO tasks ({_COLUMNS}) VALUES "
#: Task rows padded with rows of NULLs (bulk.padded_pieces), which it leaves out.
PADDED_INSERT_SQL = (
    f"INSERT INTO tasks ({_COLUMNS}) SELECT * FROM (VALUES {{values}}) WHERE column1 IS NOT NULL"
)
DATA_SQL = "INSERT INTO task_data (id, data) VALUES "
EMPTY_DATA = b"{}"  # data with no task_data row
RESULT_SQL = "INSERT OR REPLACE INTO task_results (id, result) VALUES "
#: A task row's data and result, as two more columns of a query on ``tasks``.
PAYLOAD_COLUMNS = (
    "(SELECT data FROM task_data WHERE task_data.id = tasks.id), "
    "(SELECT result FROM task_results WHERE task_results.id = tasks.id)"
)
ORDER_SQL = " ORDER BY due_s, priority, rowid"
UPSERT_SCHEDULE_SQL = (
    "INSERT INTO schedules (id, updated_s, version, record) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET updated_s = excluded.updated_s, "
    "version = excluded.version, record = excluded.record"
)
DELETE_SCHEDULE_SQL = "DELETE FROM schedules WHERE id = ?"
#: Each state's name (``.name`` on an enum member is a slow descriptor call).
STATE_NAMES = {state: state.name for state in TaskLifecycle}
UNFINISHED_SQL = ", ".join(f"'{s.name}'" for s in TaskLifecycle if s not in TERMINAL_STATES)


class InsertRows(NamedTuple):
    """One insert call's rows: ``tasks`` rows, then ``task_data`` and ``task_results``
    rows for the tasks that have data or a result.  Tuples: rows of plain values
    are soon untracked by the garbage collector, which thousands of inserts in
    flight would otherwise keep busy."""

    tasks: tuple[Row, ...]
    data: tuple[Row, ...]
    results: tuple[Row, ...]


def encode_insert(
    tasks: Sequence[Task], now_s: float, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> InsertRows:
    """The rows of one insert call, encoded up front so a bad task fails only its caller."""
    rows: list[Row] = []
    data_rows: list[Row] = []
    results: list[Row] = []
    for task in tasks:
        row, data = encode_one(task, now_s, max_payload_bytes)
        rows.append(row)
        if data is not None:
            data_rows.append(data)
        if task.result is not None:
            results.append((task.id, _encoded(task, _result, max_payload_bytes)))
    return InsertRows(tuple(rows), tuple(data_rows), tuple(results))


def encode_one(task: Task, now_s: float, max_payload_bytes: int) -> tuple[Row, Row | None]:
    """One task's row, and its data row (None for empty data); not its result."""
    data = task.data_json
    check_payload("task_data", data, max_payload_bytes)
    return _encoded(task, insert_row, now_s), None if data == EMPTY_DATA else (task.id, data)


def _encoded(task: Task, encode: Callable[[Task, Any], T], arg: Any) -> T:
    """``encode(task, arg)``; a value JSON cannot hold fails with the task named."""
    try:
        return encode(task, arg)
    except (ValueError, OverflowError, OSError, TypeError, RecursionError) as exc:
        raise TaskValidationError("task", task.id, f"cannot be stored: {exc}") from exc


class SaveRow(NamedTuple):
    """One task's queued save: its fields (id, state, due, priority, updated, version,
    record, finished), the lease fencing it, and its result's JSON (None when it
    has none; written only if the save is)."""

    task_id: str
    lease: Lease | None
    ends_lease: bool
    row: Row
    result: bytes | None


def encode_saves(
    tasks: Mapping[str, Task], fences: Mapping[str, Lease], now_s: float, max_payload_bytes: int
) -> list[SaveRow]:
    """The UPDATE rows of a group's saves.  A task whose result cannot be stored
    (not JSON, nested too deep, too large) is saved with that error instead of
    the result: one bad result never stops the writer or its neighbours."""
    saves = []
    for task_id, task in tasks.items():
        try:
            result = None if task.result is None else _result(task, max_payload_bytes)
        except Exception as exc:
            logger.error("task %r: result cannot be stored (%s); saving the error", task_id, exc)
            task.result = result = None
            task.error = f"result cannot be stored: {exc}"
        try:
            row = _update_row(task, now_s)
        except Exception:
            logger.exception("task %r cannot be stored; its state change is not saved", task_id)
            continue
        ends = task.lifecycle in LEASE_ENDING_STATES
        saves.append(SaveRow(task_id, fences.get(task_id), ends, row, result))
    return saves


def _result(task: Task, max_payload_bytes: int) -> bytes | None:
    result = encode_result(task)
    if result is not None:
        check_payload("result", result, max_payload_bytes)
    return result


def insert_row(task: Task, now_s: float) -> Row:
    # A task with dependencies goes in held (PAUSED): no other process may claim it
    # before the one that scheduled it has checked them.  Its own start-claim may.
    held = task.dependencies and task.lifecycle is TaskLifecycle.QUEUED
    return (
        task.id,
        task.type,
        "PAUSED" if held else STATE_NAMES[task.lifecycle],
        task.due_s,
        int(task.priority),
        task.idempotency_key,
        now_s,
        COMPACT_VERSION,
        encode_compact(task).decode(),
    )


def _update_row(task: Task, now_s: float) -> Row:
    """The save's leading fields, in :mod:`asched.stores.sqlite.saves`' order."""
    finished = task.finished_s if task.lifecycle in TERMINAL_STATES else None
    if finished is None and task.lifecycle in TERMINAL_STATES:
        finished = now_s
    return (
        task.id,
        STATE_NAMES[task.lifecycle],
        task.due_s,
        int(task.priority),
        now_s,
        COMPACT_VERSION,
        encode_compact(task).decode(),
        finished,
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


def name_conflict(
    db: sqlite3.Connection, tasks: Sequence[Task], exc: sqlite3.IntegrityError
) -> TaskValidationError:
    """Which task of a failed batch clashed with a stored one, as a validation error."""
    if "UNIQUE" not in str(exc):
        return TaskValidationError("task", tasks[0].id, f"cannot be stored: {exc}")
    by_key = "idempotency_key" in str(exc)
    column = "idempotency_key" if by_key else "id"
    values = [t.idempotency_key if by_key else t.id for t in tasks]
    wanted = [v for v in values if v is not None]
    rows = db.execute(
        f"SELECT {column} FROM tasks WHERE {column} IN (SELECT value FROM json_each(?))",
        (orjson.dumps(wanted).decode(),),
    ).fetchall()
    taken = {row[0] for row in rows}
    clash = next((v for v in wanted if v in taken), None)
    if by_key:
        return TaskValidationError("idempotency_key", clash, "already used")
    return TaskValidationError("task_id", clash, "already exists")


def migrate(db: sqlite3.Connection, path: str) -> None:
    """Bring the file's schema up to ``SCHEMA_VERSION`` in one transaction.

    A new file is made with ``auto_vacuum=INCREMENTAL`` so purged space can be
    given back; an older file is switched over once, by a VACUUM after the
    migration (it rewrites the file, so it may take a while on a big one)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        current = int(db.execute("PRAGMA user_version").fetchone()[0])
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"sqlite store {path}: schema version {current} is newer than "
                f"this asched supports ({SCHEMA_VERSION}); upgrade asched"
            )
        if current == 0 and not _has_tables(db):
            db.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect: no table yet
        for statements in MIGRATIONS[current:]:
            for statement in statements:
                db.execute(statement)
        if current != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise
    if int(db.execute("PRAGMA auto_vacuum").fetchone()[0]) != INCREMENTAL:
        logger.info("sqlite store %s: switching to incremental auto-vacuum (one VACUUM)", path)
        db.execute("PRAGMA auto_vacuum = INCREMENTAL")
        db.execute("VACUUM")


INCREMENTAL = 2


def _has_tables(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_schema LIMIT 1").fetchone() is not None


def rollback(db: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open (SQLite may have ended it already)."""
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            logger.exception("sqlite store: rollback failed")
