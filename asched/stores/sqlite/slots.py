"""SQLiteStore's cluster-wide start rules: concurrency slots, rate budgets and
shared breakers (the rules themselves are :mod:`asched.core.claims`).

Each function runs on the writer thread inside the group's ``BEGIN IMMEDIATE``
transaction, so a start-claim reads the slots, budgets and breakers, decides,
and writes the leases and what it took, atomically against every other process
on the file.

A row of ``slots`` (name, task id, lease token) is held while its task is
RUNNING under that very token with a lease not yet expired: a save of another
state, a lease ending (lease-ending save, release, expiry) or a takeover (a new
token) frees it with no write at all.  Rows no longer held are deleted when a
claim next looks at their name, and by the heartbeat (``renew``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

import orjson

from asched.core.breaker import BreakerSettings, BreakerTransition
from asched.core.claims import BreakerRecord, ClaimNeed, breaker_outcome, plan_claims
from asched.stores.base import StartClaim
from asched.stores.leases import Lease
from asched.stores.sqlite.leases import claim_rows

_IN = "(SELECT value FROM json_each(:{}))"
_HOLDING = "t.lease_token = s.token AND t.lifecycle = 'RUNNING' AND t.lease_expires > :now"
ELIGIBLE_SQL = (
    f"SELECT id FROM tasks WHERE id IN {_IN.format('ids')} "
    "AND lifecycle IN ('QUEUED', 'SCHEDULED', 'RETRYING', 'RUNNING', 'PAUSED') "
    "AND (lease_expires IS NULL OR lease_expires <= :now OR owner = :owner)"
)
HELD_SQL = (
    f"SELECT s.name, count(*) FROM slots s JOIN tasks t ON t.id = s.task_id "
    f"WHERE s.name IN {_IN.format('names')} AND {_HOLDING} "
    f"AND s.task_id NOT IN {_IN.format('skip')} GROUP BY s.name"
)
# Every slot row of these names, and whether its task still holds it.
SLOT_ROWS_SQL = (
    "SELECT s.name, s.task_id, (t.lease_token = s.token AND t.lifecycle = 'RUNNING' "
    "AND t.lease_expires > :now) FROM slots s LEFT JOIN tasks t ON t.id = s.task_id "
    f"WHERE s.name IN {_IN.format('names')}"
)
DROP_SLOT_SQL = "DELETE FROM slots WHERE name = ? AND task_id = ?"
# Held by a rule: leased to the caller, not started; a RUNNING row's lost attempt
# is counted now, as claim_start would (its later start then counts nothing).
HOLD_SQL = (
    "UPDATE tasks SET crashes = crashes + (lifecycle = 'RUNNING' AND NOT "
    "(owner IS :owner AND lease_expires > :now)), owner = :owner, "
    f"lease_token = lease_token + 1, lease_expires = :expires WHERE id IN {_IN.format('ids')} "
    "RETURNING id, lease_token, crashes"
)
DROP_SLOTS_SQL = f"DELETE FROM slots WHERE task_id IN {_IN.format('ids')}"
ADD_SLOT_SQL = "INSERT OR REPLACE INTO slots (name, task_id, token) VALUES (?, ?, ?)"
TATS_SQL = f"SELECT key, tat FROM rate_budgets WHERE key IN {_IN.format('keys')}"
SET_TAT_SQL = (
    "INSERT INTO rate_budgets (key, tat) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET tat = excluded.tat"
)
BREAKERS_SQL = f"SELECT record FROM breakers WHERE name IN {_IN.format('names')}"
ALL_BREAKERS_SQL = "SELECT record FROM breakers ORDER BY name"
SET_BREAKER_SQL = (
    "INSERT INTO breakers (name, updated_s, record) VALUES (?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET updated_s = excluded.updated_s, record = excluded.record"
)


def _json(values: Iterable[str]) -> str:
    return orjson.dumps(list(values)).decode()


def claim_start_limited_rows(
    db: sqlite3.Connection,
    task_ids: list[str],
    owner: str,
    now_s: float,
    expires_s: float,
    needs: Mapping[str, ClaimNeed],
) -> StartClaim:
    ids = _json(task_ids)
    found = {row[0] for row in db.execute(ELIGIBLE_SQL, {"ids": ids, "now": now_s, "owner": owner})}
    free = [task_id for task_id in task_ids if task_id in found]
    wanted = [needs[i] for i in free if needs.get(i)]
    names = {name for need in wanted for name, _ in need.slots}
    held = _held_slots(db, names, now_s, found) if names else {}
    keys = {need.rate.key for need in wanted if need.rate is not None}
    tats = dict(db.execute(TATS_SQL, {"keys": _json(keys)}).fetchall()) if keys else {}
    breakers = read_breakers(db, {need.breaker.name for need in wanted if need.breaker})
    plan = plan_claims(free, needs, held, tats, breakers, now_s)
    claim = StartClaim(admitted=plan.admitted, transitions=plan.transitions, breakers=plan.breakers)
    if plan.granted:
        claim.granted = claim_rows(db, plan.granted, owner, now_s, expires_s, start=True)
        _take_slots(db, claim.granted, needs)
    if plan.holds:
        params = {"ids": _json(plan.holds), "owner": owner, "now": now_s, "expires": expires_s}
        for task_id, token, crashes in db.execute(HOLD_SQL, params).fetchall():
            lease = Lease(task_id, owner, token, expires_s, crashes)
            claim.held.append((lease, plan.holds[task_id]))
    if plan.tats:
        db.executemany(SET_TAT_SQL, list(plan.tats.items()))
    write_breakers(db, plan.breakers.values(), now_s)
    return claim


def _held_slots(
    db: sqlite3.Connection, names: set[str], now_s: float, skip: set[str]
) -> dict[str, int]:
    """How many tasks outside ``skip`` hold each slot; rows no longer held are dropped."""
    held: dict[str, int] = {}
    stale = []
    params = {"names": _json(names), "now": now_s}
    for name, task_id, holding in db.execute(SLOT_ROWS_SQL, params):
        if not holding:
            stale.append((name, task_id))
        elif task_id not in skip:
            held[name] = held.get(name, 0) + 1
    if stale:
        db.executemany(DROP_SLOT_SQL, stale)
    return held


def _take_slots(
    db: sqlite3.Connection, granted: list[Lease], needs: Mapping[str, ClaimNeed]
) -> None:
    db.execute(DROP_SLOTS_SQL, {"ids": _json(lease.task_id for lease in granted)})
    rows = [
        (name, lease.task_id, lease.token)
        for lease in granted
        if (need := needs.get(lease.task_id))
        for name, _ in need.slots
    ]
    if rows:
        db.executemany(ADD_SLOT_SQL, rows)


def read_breakers(db: sqlite3.Connection, names: Iterable[str]) -> dict[str, BreakerRecord]:
    chosen = list(names)
    if not chosen:
        return {}
    rows = db.execute(BREAKERS_SQL, {"names": _json(chosen)}).fetchall()
    records = (BreakerRecord.from_json(orjson.loads(row[0])) for row in rows)
    return {record.name: record for record in records}


def write_breakers(db: sqlite3.Connection, records: Iterable[BreakerRecord], now_s: float) -> None:
    rows = [(r.name, now_s, orjson.dumps(r.to_json()).decode()) for r in records]
    if rows:
        db.executemany(SET_BREAKER_SQL, rows)


def report_breaker_row(
    db: sqlite3.Connection,
    name: str,
    settings: BreakerSettings,
    generation: int,
    outcome: str,
    now_s: float,
) -> tuple[BreakerRecord, list[BreakerTransition]]:
    record = read_breakers(db, (name,)).get(name) or BreakerRecord(name)
    before = record.to_json()
    transitions = breaker_outcome(record, settings, generation, outcome, now_s)
    if record.to_json() != before:
        write_breakers(db, (record,), now_s)
    return record, transitions
