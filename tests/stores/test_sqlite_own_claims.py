"""A worker's own poller never takes a task that the same worker is still inserting.

The row is on disk before ``schedule_task`` returns and the task joins the
worker's active set; a claim that runs in between must leave it to the call
that inserted it (else the worker would hold two copies and run it twice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path

from asched import Scheduler
from asched.model import Task
from asched.stores.base import Lease
from asched.stores.sqlite.store import SQLiteStore


class ClaimsDuringInsert(SQLiteStore):
    """Holds each insert's caller, once the rows are committed, until the worker's
    poller has run a claim (it is told that another process wrote)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.inserted = asyncio.Event()
        self.claimed = asyncio.Event()
        self.found_while_inserting: list[list[str]] = []

    def insert_soon(self, tasks: Sequence[Task]) -> Awaitable[None]:
        return self._held_after(super().insert_soon(tasks))

    async def _held_after(self, committed: Awaitable[None]) -> None:
        await committed
        self.inserted.set()
        await asyncio.wait_for(self.claimed.wait(), 10)

    async def changed_elsewhere(self) -> bool | None:
        return self.inserted.is_set() or await super().changed_elsewhere()

    async def claim_due(
        self,
        owner: str,
        now_s: float,
        lease_s: float,
        limit: int,
        exclude: Collection[str] = (),
        task_types: Collection[str] | None = None,
    ) -> list[tuple[Lease, Task]]:
        found = await super().claim_due(owner, now_s, lease_s, limit, exclude, task_types)
        if self.inserted.is_set() and not self.claimed.is_set():
            self.found_while_inserting.append([task.id for _, task in found])
            self.claimed.set()
        return found


async def test_a_claim_during_the_insert_leaves_the_task_to_its_caller(
    tmp_path: Path, make_scheduler: Callable[..., Scheduler]
) -> None:
    store = ClaimsDuringInsert(tmp_path / "own.db")
    s = make_scheduler(store=store)
    runs: list[int] = []

    @s.task("job")
    async def job(n: int) -> int:
        runs.append(n)
        return n

    async with s:
        tid = await s.schedule_task("job", {"n": 7})
        assert await s.wait_for(tid, timeout=10) == 7
        await asyncio.sleep(0.2)  # room for a second copy to run, were there one
    assert store.found_while_inserting == [[]]
    assert runs == [7]
