"""SQLiteStore's retention: deleting finished tasks in small batches, and giving
the space back (the file uses ``auto_vacuum=INCREMENTAL``)."""

from __future__ import annotations

import sqlite3

import orjson

from asched.stores.sqlite.connection import TERMINAL_SQL

_PURGE_SQL = (
    "DELETE FROM tasks WHERE rowid IN (SELECT rowid FROM tasks INDEXED BY tasks_finished "
    f"WHERE finished_s IS NOT NULL AND finished_s <= :before AND lifecycle IN ({TERMINAL_SQL})"
    "{types} LIMIT :limit)"
)
_ONLY = " AND type IN (SELECT value FROM json_each(:only))"
_SKIP = " AND type NOT IN (SELECT value FROM json_each(:skip))"
#: Pages given back per purge: enough for a batch, small enough to stay quick.
_VACUUM_PAGES = 2000


def purge_rows(
    db: sqlite3.Connection,
    *,
    before_s: float,
    limit: int,
    only: list[str] | None,
    skip: list[str],
) -> int:
    """Delete up to ``limit`` finished rows in one transaction; then free pages."""
    types = (_ONLY if only is not None else "") + (_SKIP if skip else "")
    params: dict[str, object] = {"before": before_s, "limit": limit}
    if only is not None:
        params["only"] = orjson.dumps(only).decode()
    if skip:
        params["skip"] = orjson.dumps(skip).decode()
    db.execute("BEGIN IMMEDIATE")
    try:
        deleted = db.execute(_PURGE_SQL.format(types=types), params).rowcount
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    if deleted:
        db.execute(f"PRAGMA incremental_vacuum({_VACUUM_PAGES})").fetchall()
    return int(deleted)
