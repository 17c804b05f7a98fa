"""The ready queue: due work ordered by (priority, due time, insertion sequence).

A binary heap with lazy deletion.  ``remove`` and ``reprioritize`` are O(1) and
O(log n): a removed entry is blanked in place and skipped when it surfaces.
Ties on priority and due time come out in insertion order (FIFO).
"""

from __future__ import annotations

from collections.abc import Hashable
from heapq import heapify, heappop, heappush
from itertools import count
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class _Removed:
    """The blank left in a removed entry.  It sorts before any item, so a blanked
    entry that ties a live one on (priority, due, seq, key) -- left behind when
    ``reprioritize`` moves a key away and back -- never makes the heap compare items."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return other is not self

    def __gt__(self, other: object) -> bool:
        return False


_REMOVED: Any = _Removed()

# Heap entries are lists so a removal can blank the item in place:
# [priority, due_s, seq, key, item]
_ITEM = 4


class TaskQueue(Generic[K, T]):
    """Priority queue of items keyed by a unique ``key``; lower priority value first."""

    __slots__ = ("_entries", "_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[list[Any]] = []
        self._entries: dict[K, list[Any]] = {}
        self._seq = count()

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def push(self, key: K, priority: int, due_s: float, item: T) -> None:
        """Add ``item``; a key already queued is replaced (and requeued)."""
        if key in self._entries:
            self._entries.pop(key)[_ITEM] = _REMOVED
        entry = [priority, due_s, next(self._seq), key, item]
        self._entries[key] = entry
        heappush(self._heap, entry)

    def pop(self) -> T | None:
        """Remove and return the best item, or None when empty."""
        heap = self._heap
        while heap:  # _pop_entry, inlined: the dispatcher calls this for every task
            entry = heappop(heap)
            item = entry[_ITEM]
            if item is not _REMOVED:
                del self._entries[entry[3]]
                return item  # type: ignore[no-any-return]
        return None

    def popitem(self) -> tuple[K, T] | None:
        """Like :meth:`pop`, also returning the key."""
        entry = self._pop_entry()
        return None if entry is None else (entry[3], entry[_ITEM])

    def pop_ordered(self) -> tuple[T, int, float] | None:
        """Like :meth:`pop`, also returning the (priority, due) it was queued under."""
        entry = self._pop_entry()
        return None if entry is None else (entry[_ITEM], entry[0], entry[1])

    def _pop_entry(self) -> list[Any] | None:
        heap = self._heap
        while heap:
            entry = heappop(heap)
            if entry[_ITEM] is not _REMOVED:
                del self._entries[entry[3]]
                return entry
        return None

    def unordered(self) -> list[T]:
        """Queued items in no particular order (O(n))."""
        return [e[_ITEM] for e in self._entries.values()]

    def peek(self) -> T | None:
        heap = self._heap
        while heap:
            item = heap[0][_ITEM]
            if item is not _REMOVED:
                return item  # type: ignore[no-any-return]
            heappop(heap)
        return None

    def peek_key(self) -> tuple[int, float] | None:
        """(priority, due_s) of the best item, or None when empty."""
        if self.peek() is None:
            return None
        head = self._heap[0]
        return head[0], head[1]

    def remove(self, key: K) -> T | None:
        """Remove the item queued under ``key``; return it, or None if absent."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        item = entry[_ITEM]
        entry[_ITEM] = _REMOVED
        self._compact_if_sparse()
        return item  # type: ignore[no-any-return]

    def reprioritize(self, key: K, priority: int) -> bool:
        """Change the priority of a queued item, keeping its due time and FIFO place."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        if entry[0] != priority:
            entry[_ITEM], item = _REMOVED, entry[_ITEM]
            fresh = [priority, entry[1], entry[2], key, item]
            self._entries[key] = fresh
            heappush(self._heap, fresh)
        return True

    def items(self) -> list[T]:
        """Queued items, best first (O(n log n)); for inspection, not the hot path."""
        live = sorted(e for e in self._heap if e[_ITEM] is not _REMOVED)
        return [e[_ITEM] for e in live]

    def _compact_if_sparse(self) -> None:
        # Blanked entries only cost memory; rebuild once they dominate the heap.
        heap = self._heap
        if len(heap) > 64 and len(heap) > 4 * len(self._entries):
            self._heap = [e for e in heap if e[_ITEM] is not _REMOVED]
            heapify(self._heap)
