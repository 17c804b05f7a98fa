"""Plain-text tables and times for the ``asched`` command's output."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

_MAX_CELL = 60
# C0 and C1 controls, DEL, lone surrogates, and the invisible format characters
# that reorder or hide text (bidi overrides and isolates, zero-width marks).
_INVISIBLE = "\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ud800-\udfff"
_UNSAFE_TEXT = re.compile(f"[\x00-\x1f{_INVISIBLE}]")
_UNSAFE_LINES = re.compile(f"[\x00-\x08\x0b-\x1f{_INVISIBLE}]")  # keeps tab and newline


def printable(text: str) -> str:
    """``text`` with every control or invisible formatting character written as an
    escape (``\\x1b``, ``\\n``, ``\\u202e``): stored text cannot drive the terminal."""
    return _UNSAFE_TEXT.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in "\t\n\r":
        return repr(char)[1:-1]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class SafeOutput:
    """A text stream that escapes control characters (except tab and newline) on
    their way to ``stream``: whatever a command prints, a terminal shows it inert."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(_UNSAFE_LINES.sub(_escape, text))

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self.stream, name)


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
    text = printable(str(value))
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
