"""Splitting a worker's ready reports into messages under the size limit."""

from __future__ import annotations

from typing import TypeVar

import orjson

from asched.broker import protocol as p

T = TypeVar("T")


def split_reports(entries: list[tuple[bytes, T]], limit: int) -> list[list[tuple[bytes, T]]]:
    """Consecutive groups of (encoded item, tag) whose items add up to at most
    ``limit`` bytes; an item over the limit on its own becomes an error report."""
    batches: list[list[tuple[bytes, T]]] = [[]]
    size = 0
    for item, tag in entries:
        if len(item) > limit:
            item = too_large(item, limit)
        if size + len(item) > limit and batches[-1]:
            batches.append([])
            size = 0
        batches[-1].append((item, tag))
        size += len(item) + 1
    return batches


def too_large(item: bytes, limit: int) -> bytes:
    head = orjson.loads(item)
    message = f"the report ({len(item)} bytes) is over the message size limit ({limit})"
    return orjson.dumps(p.error_item(head["t"], head["id"], "MessageTooLargeError", message))
