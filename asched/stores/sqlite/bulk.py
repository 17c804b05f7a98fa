"""Many rows in one statement: a multi-row ``VALUES`` list of bound parameters.

Python's ``sqlite3`` takes the GIL back after every step of a statement, and
``executemany`` steps once per row: while the event loop is busy, each step
waits for the loop to hand the GIL over, so a group of a thousand rows could
take seconds.  One statement per piece of up to :data:`PIECE_ROWS` rows steps
once (or once per row it returns).  Parameters, not a JSON array: SQLite then
parses no JSON, which cost more than the writes themselves for rows that carry
a task's record.  Pieces are a power of two in size, so each statement comes
in a handful of shapes that the connection's statement cache keeps compiled.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

#: The largest piece: 256 rows of a dozen columns stay well under SQLite's limit
#: of 32766 parameters per statement.
PIECE_ROWS = 256


def pieces(rows: Sequence[Sequence[Any]]) -> Iterator[tuple[int, list[Any]]]:
    """(row count, flat parameters) of each piece of ``rows``, largest first."""
    start, total, size = 0, len(rows), PIECE_ROWS
    while start < total:
        while size > total - start:
            size //= 2
        yield size, [value for row in rows[start : start + size] for value in row]
        start += size


#: The largest padded piece (see :func:`padded_pieces`).
PADDED_ROWS = 1024


def padded_pieces(rows: Sequence[Sequence[Any]], width: int) -> Iterator[tuple[int, list[Any]]]:
    """(row count, flat parameters) of pieces of up to :data:`PADDED_ROWS` rows, the
    last one padded with rows of NULLs to a power of two: a thousand rows are one
    statement, not six.  Only for statements where a row with a NULL id matches
    nothing.  Fewer statements mean fewer waits for the GIL on the database thread,
    which has to take it back after every step while the loop is busy."""
    total = len(rows)
    for start in range(0, total, PADDED_ROWS):
        chunk = rows[start : start + PADDED_ROWS]
        size = 1
        while size < len(chunk):
            size *= 2
        params = [value for row in chunk for value in row]
        params += [None] * ((size - len(chunk)) * width)
        yield size, params


@cache
def values(rows: int, width: int) -> str:
    """``(?, ?), (?, ?)`` for ``rows`` rows of ``width`` columns."""
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * rows)
