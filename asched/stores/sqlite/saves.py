"""SQLiteStore's saves: a group's state changes as a few statements, whatever their number.

The rows go as multi-row ``VALUES`` lists (see :mod:`asched.stores.sqlite.bulk`):
the results, then the UPDATE.  The results go first, under exactly the UPDATE's
conditions, so a save the guard refuses (its row is finished already, or
another process holds its lease) writes no result either.  Only when the UPDATE
changed fewer rows than it was given does a third statement ask which fenced
saves were refused: those left unwritten whose lease is not the one they name.
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
# Rows with a NULL id pad a piece (bulk.padded_pieces): they match no task.  A
# save that was written has this group's updated_s and its record (nothing else
# writes in the transaction); one that was not is as it was, so its fence decides.
_REFUSED = (
    "WITH s({columns}) AS (VALUES {values}) "
    "SELECT s.id FROM s LEFT JOIN tasks ON tasks.id = s.id WHERE s.id IS NOT NULL "
    "AND s.token IS NOT NULL AND NOT (tasks.updated_s IS s.updated_s AND tasks.record IS s.record) "
    "AND (tasks.id IS NULL OR tasks.lease_token IS NOT s.token OR tasks.owner IS NOT s.owner)"
)
_RESULTS = (
    "WITH s({columns}, result) AS (VALUES {values}) "
    "INSERT OR REPLACE INTO task_results (id, result) "
    f"SELECT tasks.id, s.result FROM s JOIN tasks ON tasks.id = s.id WHERE {_APPLIES}"
)
_ENDS = "CASE WHEN s.ends THEN NULL ELSE tasks.{0} END"
# A finished row is never written again: a late save cannot overwrite COMPLETED,
# FAILED or CANCELLED, whoever sends it.  UPDATE comes first (the rows in a FROM
# subquery), not WITH: Python's sqlite3 before 3.12 counts no changed rows otherwise.
_SAVES = (
    "UPDATE tasks SET lifecycle = s.lifecycle, due_s = s.due_s, priority = s.priority, "
    "updated_s = s.updated_s, version = s.version, record = s.record, "
    f"finished_s = s.finished_s, owner = {_ENDS.format('owner')}, "
    f"lease_expires = {_ENDS.format('lease_expires')} "
    "FROM (SELECT {named} FROM (VALUES {values})) AS s "
    f"WHERE tasks.id = s.id AND {_APPLIES}"
)


@cache
def _sql(template: str, columns: str, rows: int) -> str:
    names = columns.split(", ")
    width = len(names) + (1 if template is _RESULTS else 0)
    named = ", ".join(f"column{n} AS {name}" for n, name in enumerate(names, 1))
    return template.format(columns=columns, values=values(rows, width), named=named)


def write_saves(db: sqlite3.Connection, saves: list[SaveRow]) -> set[str]:
    """Write a group's saves; returns the ids whose fence did not hold (left as they were)."""
    fences = [
        (s.task_id, None, None) if s.lease is None else (s.task_id, s.lease.token, s.lease.owner)
        for s in saves
    ]
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
    written = 0
    for count, params in padded_pieces(entries, 11):
        written += db.execute(_sql(_SAVES, _SAVE_COLUMNS, count), params).rowcount
    refused: set[str] = set()
    if written < len(entries):
        for count, params in padded_pieces(entries, 11):
            rows = db.execute(_sql(_REFUSED, _SAVE_COLUMNS, count), params).fetchall()
            refused.update(row[0] for row in rows)
    return refused
