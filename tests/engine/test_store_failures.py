"""The engine keeps acknowledged changes when the store fails for a while."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from asched import Scheduler, StoreBusyError, TaskLifecycle
from asched.model import Task
from asched.stores import MemoryStore
from asched.stores.base import Lease
from asched.testing import FakeClock


class FlakyStore(MemoryStore):
    """Keeps its own copies (like a durable store) and refuses the first saves."""

    shares_objects = False

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.saved: dict[str, TaskLifecycle] = {}
        self.all_saved = asyncio.Event()

    async def save(
        self, tasks: Sequence[Task], leases: Mapping[str, Lease] | None = None
    ) -> list[str]:
        if self.failures:
            self.failures -= 1
            raise StoreBusyError("database is locked")
        for task in tasks:
            self.saved[task.id] = task.lifecycle
        if self.saved and all(s is TaskLifecycle.COMPLETED for s in self.saved.values()):
            self.all_saved.set()
        return []


async def test_failed_saves_are_retried_until_they_land(clock: FakeClock) -> None:
    store = FlakyStore(failures=3)
    s = Scheduler(store, clock=clock)

    @s.task("job")
    async def job() -> None:
        return None

    async with s:
        ids = [await s.schedule_task("job") for _ in range(5)]
        for tid in ids:
            await s.wait_for(tid, timeout=5)
        await asyncio.wait_for(store.all_saved.wait(), timeout=10)
        assert s.store_errors == 3
    assert store.saved == dict.fromkeys(ids, TaskLifecycle.COMPLETED)
