"""Concurrency limits: overall, per task type and per concurrency key.

Pure bookkeeping.  ``blocker`` says which limit (if any) stops a task from
starting; the caller parks such a task here and gets it back from ``release``
when that limit frees a slot, best-first, so a full key never holds up work
for other keys.

A woken item may find a second limit full and be parked again, or be cancelled
before it starts; either way the slot it was woken for is still free, so
``park`` and ``forget`` wake the next item waiting for that slot.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from asched.core.queue import TaskQueue

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

# A blocker names the limit: ("type", task_type) or ("key", concurrency_key).
Blocker = tuple[str, str]


class ConcurrencyLimits(Generic[K, T]):
    __slots__ = (
        "_by_key",
        "_by_type",
        "_parked",
        "_parked_at",
        "_woken",
        "default_key_limit",
        "key_limits",
        "running",
        "total_limit",
        "type_limits",
    )

    def __init__(self, total_limit: int, default_key_limit: int) -> None:
        self.total_limit = total_limit
        self.default_key_limit = default_key_limit
        self.type_limits: dict[str, int] = {}
        self.key_limits: dict[str, int] = {}
        self.running = 0
        self._by_type: dict[str, int] = {}
        self._by_key: dict[str, int] = {}
        self._parked: dict[Blocker, TaskQueue[K, T]] = {}
        self._parked_at: dict[K, Blocker] = {}
        # Items handed back by release() and not started yet: the limit they left.
        self._woken: dict[K, Blocker] = {}

    @property
    def has_room(self) -> bool:
        return self.running < self.total_limit

    def running_for_key(self, key: str) -> int:
        return self._by_key.get(key, 0)

    def running_for_type(self, task_type: str) -> int:
        return self._by_type.get(task_type, 0)

    def blocker(self, task_type: str, key: str | None) -> Blocker | None:
        """The limit that keeps a task of this type and key from starting now, if any."""
        limit = self.type_limits.get(task_type)
        if limit is not None and self._by_type.get(task_type, 0) >= limit:
            return ("type", task_type)
        if key is not None:
            limit = self.key_limits.get(key, self.default_key_limit)
            if self._by_key.get(key, 0) >= limit:
                return ("key", key)
        return None

    def acquire(self, task_type: str, key: str | None, item_key: K | None = None) -> None:
        self.running += 1
        if item_key is not None and self._woken:
            self._woken.pop(item_key, None)
        if task_type in self.type_limits:
            self._by_type[task_type] = self._by_type.get(task_type, 0) + 1
        if key is not None:
            self._by_key[key] = self._by_key.get(key, 0) + 1

    def release(self, task_type: str, key: str | None) -> list[T]:
        """Free a slot; return parked items that may now be tried again."""
        self.running -= 1
        woken: list[T] = []
        held = self._by_type.get(task_type)
        if held:  # a limit registered while the task ran never counted it
            self._by_type[task_type] = held - 1
        if task_type in self.type_limits:
            self._unpark(("type", task_type), woken)
        if key is not None:
            left = self._by_key[key] - 1
            if left:
                self._by_key[key] = left
            else:
                del self._by_key[key]
            self._unpark(("key", key), woken)
        return woken

    def park(self, blocker: Blocker, key: K, priority: int, due_s: float, item: T) -> list[T]:
        """Hold ``item`` until ``blocker`` frees a slot; returns items to try again now
        (the next ones waiting for a slot this item was woken for and did not take)."""
        queue = self._parked.get(blocker)
        if queue is None:
            queue = self._parked[blocker] = TaskQueue()
        queue.push(key, priority, due_s, item)
        self._parked_at[key] = blocker
        if self._woken and self._woken.get(key) == blocker:
            del self._woken[key]  # back in the same line: that slot was taken meanwhile
            return []
        return self.forget(key)

    def forget(self, key: K) -> list[T]:
        """``key`` will not start for now (re-parked, cancelled, paused): wake the next
        item waiting for the slot it had been woken for, if any."""
        source = self._woken.pop(key, None) if self._woken else None
        woken: list[T] = []
        if source is not None:
            self._unpark(source, woken)
        return woken

    def unpark(self, key: K) -> T | None:
        """Take a specific parked item out (it was cancelled or paused)."""
        blocker = self._parked_at.pop(key, None)
        if blocker is None:
            return None
        queue = self._parked[blocker]
        item = queue.remove(key)
        if not queue:
            del self._parked[blocker]
        return item

    def unpark_all(self, blocker: Blocker) -> list[T]:
        """Take every item parked under ``blocker`` out, best first."""
        queue = self._parked.pop(blocker, None)
        if queue is None:
            return []
        woken: list[T] = []
        while (popped := queue.popitem()) is not None:
            del self._parked_at[popped[0]]
            woken.append(popped[1])
        return woken

    def parked_count(self) -> int:
        return len(self._parked_at)

    def _unpark(self, blocker: Blocker, woken: list[T]) -> None:
        queue = self._parked.get(blocker)
        if queue is None:
            return
        popped = queue.popitem()
        if popped is not None:
            del self._parked_at[popped[0]]
            self._woken[popped[0]] = blocker
            woken.append(popped[1])
        if not queue:
            del self._parked[blocker]
