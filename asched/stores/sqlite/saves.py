"""SQLiteStore's saves: a group's state changes as a few statements, whatever their number.

The rows go as multi-row ``VALUES`` lists (see :mod:`asched.stores.sqlite.bulk`),
to three statements: which fenced saves are refused (only those come back), the
results, and the UPDATE.  The results go first, under exactly the UPDATE's
conditions, so a save the guard refuses (its row is finished already, or
another process holds its lease) writes no result either.
"""

from __future__ import annotations

import sqlite3
from functools import cache

from asched.model import TERMINAL_STATES
from asched.stores.sqlite.bulk import padded_pieces, values
from asched.stores.sqlite.connection import SaveRow

_TERMINAL = ", ".join(f"'{s.name}'" for s in TERMINAL_STATES)
_FENCE_COLUMNS = "id, token, owner"
_SAVE_COLUMNS = (
    "id, lifecycle, due_s, priority, updated_s, version, record, finished_s, ends, token, owner"
)
_APPLIES = (
    f"tasks.lifecycle NOT IN ({_TERMINAL}) AND (s.token IS NULL OR "
    "(tasks.lease_token = s.token AND tasks.owner = s.owner))"
)
# Rows with a NULL id pad a piece (bulk.padded_pieces): they match no task.
_REFUSED = (
    "WITH s({columns}) AS (VALUES {values}) "
    "SELECT s.id FROM s LEFT JOIN tasks ON tasks.id = s.id WHERE s.id IS NOT NULL AND "
    "(tasks.id IS NULL OR tasks.lease_token IS NOT s.token OR tasks.owner IS NOT s.owner)"
)
_RESULTS = (
    "WITH s({columns}, result) AS (VALUES {values}) "
    "INSERT OR REPLACE INTO task_results (id, result) "
    f"SELECT tasks.id, s.result FROM s JOIN tasks ON tasks.id = s.id WHERE {_APPLIES}"
)
_ENDS = "CASE WHEN s.ends THEN NULL ELSE tasks.{0} END"
# A finished row is never written again: a late save cannot overwrite COMPLETED,
# FAILED or CANCELLED, whoever sends it.
_SAVES = (
    "WITH s({columns}) AS (VALUES {values}) "
    "UPDATE tasks SET lifecycle = s.lifecycle, due_s = s.due_s, priority = s.priority, "
    "updated_s = s.updated_s, version = s.version, record = s.record, "
    f"finished_s = s.finished_s, owner = {_ENDS.format('owner')}, "
    f"lease_expires = {_ENDS.format('lease_expires')} "
    f"FROM s WHERE tasks.id = s.id AND {_APPLIES}"
)


@cache
def _sql(template: str, columns: str, rows: int) -> str:
    width = len(columns.split(", ")) + (1 if template is _RESULTS else 0)
    return template.format(columns=columns, values=values(rows, width))


def write_saves(db: sqlite3.Connection, saves: list[SaveRow]) -> set[str]:
    """Write a group's saves; returns the ids whose fence did not hold (left as they were)."""
    fences = [
        (s.task_id, None, None) if s.lease is None else (s.task_id, s.lease.token, s.lease.owner)
        for s in saves
    ]
    refused: set[str] = set()
    fenced = [fence for fence in fences if fence[1] is not None]
    for count, params in padded_pieces(fenced, 3):
        rows = db.execute(_sql(_REFUSED, _FENCE_COLUMNS, count), params).fetchall()
        refused.update(row[0] for row in rows)
    results = [
        (*fence, save.result)
        for fence, save in zip(fences, saves, strict=True)
        if save.result is not None
    ]
    for count, params in padded_pieces(results, 4):
        db.execute(_sql(_RESULTS, _FENCE_COLUMNS, count), params)
    entries = [
        (*save.row, 1 if save.ends_lease else 0, fence[1], fence[2])
        for fence, save in zip(fences, saves, strict=True)
    ]
    for count, params in padded_pieces(entries, 11):
        db.execute(_sql(_SAVES, _SAVE_COLUMNS, count), params)
    return refused
