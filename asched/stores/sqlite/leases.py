"""SQLiteStore's lease statements: claims, heartbeats, releases and fenced saves.

Each runs inside the writer's group transaction (``BEGIN IMMEDIATE``), so it is
atomic against every other process on the file: no two claims can both see a
task free.  A row is free when ``lease_expires`` is NULL or past; ``owner`` and
``lease_expires`` are both NULL or both set.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import cache
from typing import Any, NamedTuple, TypeVar

import orjson

from asched.model import TERMINAL_STATES, TaskPriority
from asched.stores.base import Lease
from asched.stores.sqlite.bulk import PADDED_ROWS, padded_pieces, values
from asched.stores.sqlite.connection import CLAIMABLE_SQL, PAYLOAD_COLUMNS, rollback

T = TypeVar("T")

_FREE = "(lease_expires IS NULL OR lease_expires <= :now)"
_TERMINAL = ", ".join(f"'{s.name}'" for s in TERMINAL_STATES)
_PRIORITIES = ", ".join(str(p.value) for p in TaskPriority)
_LEASE = "owner = :owner, lease_token = lease_token + 1, lease_expires = :expires"

# Python's sqlite3 takes the GIL back after every row a statement returns: while
# the loop is busy, each such step waits for it to hand the GIL over.  So a
# claim returns one row: the grants are read as one JSON array by a SELECT with
# the UPDATE's very conditions, just before it in the same transaction (the
# write lock is held, so both see the same rows), then the UPDATE writes them.
_CLAIMED = "id IN (SELECT value FROM json_each(:ids))"
_CLAIM_WHERE = f"{_CLAIMED} AND lifecycle NOT IN ({_TERMINAL}) AND ({_FREE} OR owner = :owner)"
CLAIM_SQL = f"UPDATE tasks SET {_LEASE} WHERE {_CLAIM_WHERE}"
CLAIM_GRANTS_SQL = (
    "SELECT json_group_array(json_array(id, lease_token + 1, crashes)) "
    f"FROM tasks WHERE {_CLAIM_WHERE}"
)
# Starting attempts: the lease and RUNNING in one statement.  PAUSED too: a task
# with dependencies is inserted PAUSED, and only the process that holds it (and
# found them met) ever asks to start it -- but never one paused by a user: another
# process that had it armed must not start it.  A row still RUNNING
# under someone else's (or an expired) lease is an attempt whose worker went
# away: counted before this one starts.
_LOST_ATTEMPT = "(lifecycle = 'RUNNING' AND NOT (owner IS :owner AND lease_expires > :now))"
_NOT_USER_PAUSED = (
    "NOT (lifecycle = 'PAUSED' AND coalesce(json_extract(record, '$.user_paused'), 0))"
)
_CLAIM_START_WHERE = (
    f"{_CLAIMED} AND lifecycle IN ('QUEUED', 'SCHEDULED', 'RETRYING', 'RUNNING', 'PAUSED') "
    f"AND {_NOT_USER_PAUSED} AND ({_FREE} OR owner = :owner)"
)
CLAIM_START_SQL = (
    f"UPDATE tasks SET crashes = crashes + {_LOST_ATTEMPT}, "
    # The start time goes to its own column (reads take it from there until the
    # record catches up): rewriting the record would cost more than the rest.
    "started_s = :now, "
    f"lifecycle = 'RUNNING', {_LEASE} WHERE {_CLAIM_START_WHERE}"
)
CLAIM_START_GRANTS_SQL = (
    f"SELECT json_group_array(json_array(id, lease_token + 1, crashes + {_LOST_ATTEMPT})) "
    f"FROM tasks WHERE {_CLAIM_START_WHERE}"
)
# A start-claim that knows each task's token (0 for a task nobody leased yet): the
# rows it finds as expected are started by this one statement, which returns no
# row -- the tokens follow -- and so needs no SELECT pass nor, alone, a
# transaction of its own.  Only rows without lost attempts (not RUNNING, no
# crashes counted); the others go the general way (``start_rows``).
# (UPDATE first, not WITH: Python's sqlite3 before 3.12 counts no rows otherwise.)
_START_KNOWN = (
    "UPDATE tasks SET started_s = ?, lifecycle = 'RUNNING', owner = ?, "
    "lease_token = c.column2 + 1, lease_expires = ? FROM (VALUES {values}) AS c "
    "WHERE tasks.id = c.column1 AND tasks.lease_token = c.column2 AND tasks.crashes = 0 "
    f"AND lifecycle IN ('QUEUED', 'SCHEDULED', 'RETRYING', 'PAUSED') AND {_NOT_USER_PAUSED} "
    "AND (lease_expires IS NULL OR lease_expires <= ? OR owner = ?)"
)
# Which of them that statement started (when it did not start them all).
_STARTED_KNOWN = (
    "WITH c(id, token) AS (VALUES {values}) "
    "SELECT tasks.id, tasks.lease_token FROM c JOIN tasks ON tasks.id = c.id "
    "WHERE tasks.lease_token = c.token + 1 AND tasks.owner = ? AND tasks.lease_expires = ? "
    "AND tasks.started_s = ? AND tasks.lifecycle = 'RUNNING'"
)
# ``priority IN (...)`` lets SQLite walk tasks_claimable one priority at a time,
# each in due order: the rows come out best first, so no sort and it stops at LIMIT.
_CLAIM_DUE = (
    f"UPDATE tasks SET crashes = crashes + (lifecycle = 'RUNNING'), {_LEASE} WHERE rowid IN ("
    f"SELECT rowid FROM tasks INDEXED BY tasks_claimable WHERE {CLAIMABLE_SQL} "
    f"AND priority IN ({_PRIORITIES}) AND due_s <= :now AND {_FREE} "
    "AND id NOT IN (SELECT value FROM json_each(:exclude)){types} "
    "ORDER BY priority, due_s LIMIT :limit) "
    f"RETURNING id, lease_token, priority, due_s, rowid, record, lifecycle, started_s, "
    f"crashes, {PAYLOAD_COLUMNS}"
)
CLAIM_DUE_SQL = _CLAIM_DUE.format(types="")
# Only the types a worker has handlers for (tasks_claimable still leads the walk).
CLAIM_DUE_TYPES_SQL = _CLAIM_DUE.format(types=" AND type IN (SELECT value FROM json_each(:types))")
# Per priority, the first free claimable task in due order (tasks_claimable);
# then the other owners' leases, free from their expiry (tasks_by_owner holds
# leased rows only).  One column each: SQLite's min(a, b, ...) is NULL as soon
# as one of them is.
NEXT_DUE_SQL = "SELECT " + ", ".join(
    [
        *(
            f"(SELECT due_s FROM tasks INDEXED BY tasks_claimable WHERE {CLAIMABLE_SQL} "
            f"AND priority = {priority.value} AND {_FREE} ORDER BY due_s LIMIT 1)"
            for priority in TaskPriority
        ),
        "(SELECT min(max(due_s, lease_expires)) FROM tasks INDEXED BY tasks_by_owner "
        "WHERE owner IS NOT NULL AND owner != :owner AND lease_expires > :now "
        f"AND {CLAIMABLE_SQL})",
    ]
)
# Concurrency slot rows no longer held (asched.stores.sqlite.slots).
SWEEP_SLOTS_SQL = (
    "DELETE FROM slots WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = slots.task_id "
    "AND t.lease_token = slots.token AND t.lifecycle = 'RUNNING')"
)
# A heartbeat reads what it extends and what ran out as one row each (see above).
_VALID = "owner = :owner AND lease_expires > :now"
_RUN_OUT = "owner = :owner AND lease_expires <= :now"
RENEWED_SQL = f"SELECT json_group_array(json_array(id, lease_token)) FROM tasks WHERE {_VALID}"
RENEW_SQL = f"UPDATE tasks SET lease_expires = :expires WHERE {_VALID}"
EXPIRED_SQL = f"SELECT json_group_array(id) FROM tasks WHERE {_RUN_OUT}"
EXPIRE_SQL = f"UPDATE tasks SET owner = NULL, lease_expires = NULL WHERE {_RUN_OUT}"
KEEP_ALIVE_SQL = "UPDATE tasks SET lease_expires = ? WHERE owner = ? AND lease_expires > ?"
# One statement per piece of leases, not a step per lease (see above); rows with
# a NULL id pad a piece (bulk.padded_pieces) and match no task.
_RELEASE = (
    "WITH r(id, token, owner) AS (VALUES {values}) "
    "UPDATE tasks SET owner = NULL, lease_expires = NULL FROM r "
    "WHERE tasks.id = r.id AND tasks.lease_token = r.token AND tasks.owner = r.owner"
)


class Claimed(NamedTuple):
    """One row ``claim_due`` leased, with what it takes to rank and decode it."""

    lease: Lease
    rank: tuple[int, float, int]
    record: str
    lifecycle: str
    started_s: float | None
    data: bytes | None
    result: bytes | None


def _json(values: Iterable[str]) -> str:
    return orjson.dumps(list(values)).decode()


def claim_rows(
    db: sqlite3.Connection,
    ids: Sequence[str],
    owner: str,
    now_s: float,
    expires_s: float,
    start: bool = False,
) -> list[Lease]:
    params = {"ids": _json(ids), "owner": owner, "now": now_s, "expires": expires_s}
    grants = CLAIM_START_GRANTS_SQL if start else CLAIM_GRANTS_SQL
    rows = _one_array(db, grants, params)
    if rows:
        db.execute(CLAIM_START_SQL if start else CLAIM_SQL, params)
    return [Lease(task_id, owner, token, expires_s, crashes) for task_id, token, crashes in rows]


def start_rows(
    db: sqlite3.Connection,
    ids: Sequence[str],
    tokens: Mapping[str, int],
    owner: str,
    now_s: float,
    expires_s: float,
    alone: bool,
) -> list[Lease]:
    """``claim_rows(start=True)``, in one statement when every task is as ``tokens``
    (else 0) says.  ``alone``: not inside a transaction; the statement is one, and
    the rest, if any, gets one of its own."""
    if len(ids) > PADDED_ROWS:
        return _in_transaction(db, alone, claim_rows, ids, owner, now_s, expires_s, True)
    known = [(task_id, tokens.get(task_id, 0)) for task_id in ids]
    count, params = next(padded_pieces(known, 2))
    started = db.execute(
        _known_sql(_START_KNOWN, count), [now_s, owner, expires_s, *params, now_s, owner]
    ).rowcount
    if started == len(ids):
        return [Lease(task_id, owner, token + 1, expires_s, 0) for task_id, token in known]
    return _in_transaction(db, alone, _start_rest, known, params, owner, now_s, expires_s)


def _start_rest(
    db: sqlite3.Connection,
    known: list[tuple[str, int]],
    params: list[Any],
    owner: str,
    now_s: float,
    expires_s: float,
) -> list[Lease]:
    """After ``_START_KNOWN`` started only some: those, and the rest the general way."""
    rows = db.execute(
        _known_sql(_STARTED_KNOWN, len(params) // 2), [*params, owner, expires_s, now_s]
    ).fetchall()
    leases = [Lease(task_id, owner, token, expires_s, 0) for task_id, token in rows]
    started = {lease.task_id for lease in leases}
    rest = [task_id for task_id, _ in known if task_id not in started]
    return leases + claim_rows(db, rest, owner, now_s, expires_s, start=True) if rest else leases


def _in_transaction(db: sqlite3.Connection, alone: bool, work: Callable[..., T], *args: Any) -> T:
    """``work(db, *args)``, in a transaction of its own if ``alone``."""
    if not alone:
        return work(db, *args)
    db.execute("BEGIN IMMEDIATE")
    try:
        done = work(db, *args)
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise
    return done


@cache
def _known_sql(template: str, rows: int) -> str:
    return template.format(values=values(rows, 2))


def _one_array(db: sqlite3.Connection, sql: str, params: Any) -> list[Any]:
    """The JSON array the one row of ``sql`` holds."""
    row = db.execute(sql, params).fetchone()
    return orjson.loads(row[0]) if row is not None and row[0] is not None else []


def claim_due_rows(
    db: sqlite3.Connection,
    owner: str,
    now_s: float,
    expires_s: float,
    limit: int,
    exclude: Collection[str],
    task_types: Collection[str] | None = None,
) -> list[Claimed]:
    params = {
        "owner": owner,
        "now": now_s,
        "expires": expires_s,
        "limit": limit,
        "exclude": _json(exclude),
    }
    sql = CLAIM_DUE_SQL
    if task_types is not None:
        sql = CLAIM_DUE_TYPES_SQL
        params["types"] = _json(task_types)
    rows = db.execute(sql, params).fetchall()
    claimed = [
        Claimed(
            Lease(task_id, owner, token, expires_s, crashes),
            (priority, due_s, rowid),
            record,
            lifecycle,
            started_s,
            data,
            result,
        )
        for (
            task_id,
            token,
            priority,
            due_s,
            rowid,
            record,
            lifecycle,
            started_s,
            crashes,
            data,
            result,
        ) in rows
    ]
    claimed.sort(key=lambda c: c.rank)  # RETURNING keeps no order
    return claimed


def earliest(row: Sequence[float | None]) -> float | None:
    return min((t for t in row if t is not None), default=None)


def renew_rows(
    db: sqlite3.Connection, owner: str, now_s: float, expires_s: float, sweep: bool = False
) -> tuple[list[tuple[str, int]], list[str]]:
    """(extended (id, token) pairs, ids whose expired lease this ended); with
    ``sweep``, also drops the concurrency slot rows no longer held."""
    params = {"owner": owner, "now": now_s, "expires": expires_s}
    extended = _one_array(db, RENEWED_SQL, params)
    if extended:
        db.execute(RENEW_SQL, params)
    expired = _one_array(db, EXPIRED_SQL, params)
    if expired:
        db.execute(EXPIRE_SQL, params)
    if sweep:
        db.execute(SWEEP_SLOTS_SQL)
    return [(i, t) for i, t in extended], expired


def release_rows(db: sqlite3.Connection, leases: Sequence[Lease]) -> None:
    rows = [(x.task_id, x.token, x.owner) for x in leases]
    for count, params in padded_pieces(rows, 3):
        db.execute(_release_sql(count), params)


@cache
def _release_sql(rows: int) -> str:
    return _RELEASE.format(values=values(rows, 3))


def keep_alive_rows(db: sqlite3.Connection, owner: str, now_s: float, expires_s: float) -> int:
    """Extend ``owner``'s valid leases in a transaction of their own."""
    return _in_transaction(db, True, _kept_alive, owner, now_s, expires_s)


def _kept_alive(db: sqlite3.Connection, owner: str, now_s: float, expires_s: float) -> int:
    return int(db.execute(KEEP_ALIVE_SQL, (expires_s, owner, now_s)).rowcount)
