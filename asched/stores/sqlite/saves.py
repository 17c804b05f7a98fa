"""SQLiteStore's saves: a group's state changes as one UPDATE over a JSON array.

Python's ``sqlite3`` takes the GIL back after every step of a statement, and
``executemany`` steps once per row.  While the event loop is busy, each of those
waits for the loop to hand the GIL over (up to the 5 ms switch interval), so a
group of a thousand saves could take seconds.  Here a group's saves are one
parameter -- a JSON array, one entry per task -- to three statements whatever
their number: which fenced saves are refused (only those come back), the
results, and the UPDATE.  The results go first, under exactly the UPDATE's
conditions, so a save the guard refuses (its row is finished already, or
another process holds its lease) writes no result either.
"""

from __future__ import annotations

import sqlite3

import orjson

from asched.model import TERMINAL_STATES
from asched.stores.sqlite.connection import SaveRow

_TERMINAL = ", ".join(f"'{s.name}'" for s in TERMINAL_STATES)


# One entry per save: [id, lifecycle, due_s, priority, updated_s, version, record,
# finished_s, ends the lease (0/1), lease token or null, owner or null, result or null].
# (json_extract, not ->>, which needs SQLite 3.38.)
def _at(index: int) -> str:
    return f"json_extract(s.value, '$[{index}]')"


_APPLIES = (
    f"tasks.lifecycle NOT IN ({_TERMINAL}) AND ({_at(9)} IS NULL OR "
    f"(tasks.lease_token = {_at(9)} AND tasks.owner = {_at(10)}))"
)
REFUSED_SQL = (
    f"SELECT {_at(0)} FROM json_each(?) AS s LEFT JOIN tasks ON tasks.id = {_at(0)} "
    f"WHERE tasks.id IS NULL OR tasks.lease_token IS NOT {_at(1)} "
    f"OR tasks.owner IS NOT {_at(2)}"
)
RESULTS_SQL = (
    "INSERT OR REPLACE INTO task_results (id, result) "
    f"SELECT tasks.id, CAST({_at(11)} AS BLOB) FROM json_each(?) AS s "
    f"JOIN tasks ON tasks.id = {_at(0)} WHERE {_at(11)} IS NOT NULL AND {_APPLIES}"
)
_ENDS = f"CASE WHEN {_at(8)} THEN NULL ELSE tasks.{{0}} END"
# A finished row is never written again: a late save cannot overwrite COMPLETED,
# FAILED or CANCELLED, whoever sends it.
SAVES_SQL = (
    f"UPDATE tasks SET lifecycle = {_at(1)}, due_s = {_at(2)}, priority = {_at(3)}, "
    f"updated_s = {_at(4)}, version = {_at(5)}, record = {_at(6)}, finished_s = {_at(7)}, "
    f"owner = {_ENDS.format('owner')}, lease_expires = {_ENDS.format('lease_expires')} "
    f"FROM json_each(?) AS s WHERE tasks.id = {_at(0)} AND {_APPLIES}"
)


def write_saves(db: sqlite3.Connection, saves: list[SaveRow]) -> set[str]:
    """Write a group's saves; returns the ids whose fence did not hold (left as they were)."""
    fenced = [(s.task_id, s.lease.token, s.lease.owner) for s in saves if s.lease is not None]
    refused: set[str] = set()
    if fenced:
        rows = db.execute(REFUSED_SQL, (orjson.dumps(fenced).decode(),)).fetchall()
        refused = {row[0] for row in rows}
    entries = []
    with_results = False
    for save in saves:
        lease = save.lease
        result = save.result
        if result is not None:
            with_results = True
        entries.append(
            (
                *save.row,
                1 if save.ends_lease else 0,
                None if lease is None else lease.token,
                None if lease is None else lease.owner,
                None if result is None else result.decode(),
            )
        )
    batch = (orjson.dumps(entries).decode(),)
    if with_results:
        db.execute(RESULTS_SQL, batch)
    db.execute(SAVES_SQL, batch)
    return refused
