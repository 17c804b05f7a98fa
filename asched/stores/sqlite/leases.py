"""SQLiteStore's lease statements: claims, heartbeats, releases and fenced saves.

Each runs inside the writer's group transaction (``BEGIN IMMEDIATE``), so it is
atomic against every other process on the file: no two claims can both see a
task free.  A row is free when ``lease_expires`` is NULL or past; ``owner`` and
``lease_expires`` are both NULL or both set.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import NamedTuple

import aiosqlite
import orjson

from asched.model import TERMINAL_STATES, TaskPriority
from asched.stores.base import CLAIMABLE_STATES, Lease
from asched.stores.sqlite.connection import CLAIMABLE_SQL, UPDATE_SQL, Row, SaveRow

_FREE = "(lease_expires IS NULL OR lease_expires <= :now)"
_TERMINAL = ", ".join(f"'{s.name}'" for s in TERMINAL_STATES)
_PRIORITIES = ", ".join(str(p.value) for p in TaskPriority)
_LEASE = "owner = :owner, lease_token = lease_token + 1, lease_expires = :expires"

CLAIM_SQL = (
    f"UPDATE tasks SET {_LEASE} WHERE id IN (SELECT value FROM json_each(:ids)) "
    f"AND lifecycle NOT IN ({_TERMINAL}) AND ({_FREE} OR owner = :owner) "
    "RETURNING id, lease_token"
)
# ``priority IN (...)`` lets SQLite walk tasks_claimable one priority at a time,
# each in due order: the rows come out best first, so no sort and it stops at LIMIT.
CLAIM_DUE_SQL = (
    f"UPDATE tasks SET {_LEASE} WHERE rowid IN ("
    f"SELECT rowid FROM tasks INDEXED BY tasks_claimable WHERE {CLAIMABLE_SQL} "
    f"AND priority IN ({_PRIORITIES}) AND due_s <= :now AND {_FREE} "
    "AND id NOT IN (SELECT value FROM json_each(:exclude)) "
    "ORDER BY priority, due_s LIMIT :limit) "
    "RETURNING id, lease_token, priority, due_s, rowid, record"
)
# Per state, the first free task in due order (tasks_by_state); then the other
# owners' leases, free from their expiry (tasks_by_owner holds leased rows only).
# One column each: SQLite's min(a, b, ...) is NULL as soon as one of them is.
NEXT_DUE_SQL = "SELECT " + ", ".join(
    [
        *(
            f"(SELECT due_s FROM tasks WHERE lifecycle = '{state}' AND {_FREE} "
            "ORDER BY due_s LIMIT 1)"
            for state in sorted(s.name for s in CLAIMABLE_STATES)
        ),
        "(SELECT min(max(due_s, lease_expires)) FROM tasks INDEXED BY tasks_by_owner "
        "WHERE owner IS NOT NULL AND owner != :owner AND lease_expires > :now "
        f"AND {CLAIMABLE_SQL})",
    ]
)
RENEW_SQL = (
    "UPDATE tasks SET lease_expires = ? WHERE owner = ? AND lease_expires > ? "
    "RETURNING id, lease_token"
)
EXPIRE_SQL = (
    "UPDATE tasks SET owner = NULL, lease_expires = NULL "
    "WHERE owner = ? AND lease_expires <= ? RETURNING id"
)
_END = "owner = NULL, lease_expires = NULL"
_FENCE = " AND lease_token = ? AND owner = ?"
RELEASE_SQL = f"UPDATE tasks SET {_END} WHERE id = ?{_FENCE}"
_ENDING_UPDATE_SQL = UPDATE_SQL.replace(" SET ", f" SET {_END}, ", 1)
#: (fenced, ends the lease) -> the UPDATE for a save; all take UPDATE_SQL's row
#: (+ token and owner when fenced).
SAVE_SQL = {
    (False, False): UPDATE_SQL,
    (False, True): _ENDING_UPDATE_SQL,
    (True, False): UPDATE_SQL + _FENCE,
    (True, True): _ENDING_UPDATE_SQL + _FENCE,
}
_STALE_SQL = "SELECT id, lease_token, owner FROM tasks WHERE id IN (SELECT value FROM json_each(?))"


class Claimed(NamedTuple):
    """One row ``claim_due`` leased, with what it takes to rank and decode it."""

    lease: Lease
    rank: tuple[int, float, int]
    record: str


def _json(values: Iterable[str]) -> str:
    return orjson.dumps(list(values)).decode()


async def claim_rows(
    db: aiosqlite.Connection, ids: Sequence[str], owner: str, now_s: float, expires_s: float
) -> list[Lease]:
    params = {"ids": _json(ids), "owner": owner, "now": now_s, "expires": expires_s}
    rows = await db.execute_fetchall(CLAIM_SQL, params)
    return [Lease(task_id, owner, token, expires_s) for task_id, token in rows]


async def claim_due_rows(
    db: aiosqlite.Connection,
    owner: str,
    now_s: float,
    expires_s: float,
    limit: int,
    exclude: Collection[str],
) -> list[Claimed]:
    params = {
        "owner": owner,
        "now": now_s,
        "expires": expires_s,
        "limit": limit,
        "exclude": _json(exclude),
    }
    rows = await db.execute_fetchall(CLAIM_DUE_SQL, params)
    claimed = [
        Claimed(Lease(task_id, owner, token, expires_s), (priority, due_s, rowid), record)
        for task_id, token, priority, due_s, rowid, record in rows
    ]
    claimed.sort(key=lambda c: c.rank)  # RETURNING keeps no order
    return claimed


def earliest(row: Sequence[float | None]) -> float | None:
    return min((t for t in row if t is not None), default=None)


async def renew_rows(
    db: aiosqlite.Connection, owner: str, now_s: float, expires_s: float
) -> tuple[list[tuple[str, int]], list[str]]:
    """(extended (id, token) pairs, ids whose expired lease this ended)."""
    extended = await db.execute_fetchall(RENEW_SQL, (expires_s, owner, now_s))
    expired = await db.execute_fetchall(EXPIRE_SQL, (owner, now_s))
    return [(i, t) for i, t in extended], [row[0] for row in expired]


async def release_rows(db: aiosqlite.Connection, leases: Sequence[Lease]) -> None:
    await db.executemany(RELEASE_SQL, [(x.task_id, x.token, x.owner) for x in leases])


async def write_saves(db: aiosqlite.Connection, saves: list[SaveRow]) -> set[str]:
    """Write a group's saves; returns the ids whose fence did not hold (left as they were)."""
    fences = {s.task_id: s.lease for s in saves if s.lease is not None}
    refused = await _stale(db, fences) if fences else set()
    batches: dict[tuple[bool, bool], list[Row]] = {}
    for save in saves:
        lease = save.lease
        if lease is None:
            batches.setdefault((False, save.ends_lease), []).append(save.row)
        elif save.task_id not in refused:
            row = (*save.row, lease.token, lease.owner)
            batches.setdefault((True, save.ends_lease), []).append(row)
    for kind, rows in batches.items():
        await db.executemany(SAVE_SQL[kind], rows)
    return refused


async def _stale(db: aiosqlite.Connection, fences: Mapping[str, Lease]) -> set[str]:
    """Fenced ids whose lease is not the one held now.  Exact: the group holds the
    write lock, so nothing can change between this and the UPDATEs."""
    held = {
        task_id
        for task_id, token, owner in await db.execute_fetchall(_STALE_SQL, (_json(fences),))
        if (token, owner) == (fences[task_id].token, fences[task_id].owner)
    }
    return {task_id for task_id in fences if task_id not in held}
