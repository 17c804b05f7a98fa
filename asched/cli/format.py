"""Plain-text tables and times for the ``asched`` command's output."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

_MAX_CELL = 60


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns separated by two spaces, with a rule under the header.
    Long cells are cut short, except in the last column."""
    last = len(headers) - 1
    cells = [[_cell(value, i < last) for i, value in enumerate(row)] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for index, text in enumerate(row):
            widths[index] = max(widths[index], len(text))
    lines = [_line(headers, widths), _line(["-" * w for w in widths], widths)]
    lines += [_line(row, widths) for row in cells]
    return "\n".join(lines)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(text.ljust(width) for text, width in zip(cells, widths, strict=True)).rstrip()


def _cell(value: object, cut: bool) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return when(value)
    text = str(value).replace("\n", " ")
    return text if not cut or len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def when(value: datetime | float | None) -> str:
    """A UTC timestamp to the second, or ``-``."""
    if value is None:
        return "-"
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
