"""A save outrun by this process's own start-claim is written again, not taken for
a lost lease (SQLite and Redis).

Taking over a dead worker's task writes it back QUEUED and claims its start.
The write-back may fence that save by the lease the claim is about to replace;
if the claim commits first, the store refuses the save.  Nobody else holds the
task, so the attempt must go on and the task end COMPLETED -- not stranded
RUNNING under a lease its own worker renews for ever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from asched import Scheduler, TaskLifecycle
from asched.model import Task
from asched.stores import Store
from asched.stores.redis import RedisStore
from asched.stores.sqlite.store import SQLiteStore

L = TaskLifecycle


def claim_before_save(base: type[Any]) -> type[Any]:
    class ClaimBeforeSave(base):  # type: ignore[misc, valid-type]
        """Commits a start-claim before the save the write-back had already fenced
        by the lease that claim replaces."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.claimed = asyncio.Event()
            self.granted: dict[str, int] = {}
            #: saves fenced by a lease older than one a start-claim granted meanwhile
            self.outrun: list[str] = []
            self.outrun_saved = asyncio.Event()

        async def save(self, tasks: Any, leases: Any = None) -> list[str]:
            if leases and not self.claimed.is_set():
                await self.claimed.wait()
            for task_id, lease in (leases or {}).items():
                if lease.token < self.granted.get(task_id, 0):
                    self.outrun.append(task_id)
            refused: list[str] = await super().save(tasks, leases)
            if self.outrun:
                self.outrun_saved.set()
            return refused

        async def _claim_start(self, task_ids: Any, *args: Any) -> Any:
            try:
                granted = await super()._claim_start(task_ids, *args)
                self.granted.update((lease.task_id, lease.token) for lease in granted)
                return granted
            finally:
                self.claimed.set()

    return ClaimBeforeSave


@pytest.fixture(params=["sqlite", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[tuple[Store, Any]]:
    """(a plain store for the dead worker, the racing store for the live one)."""
    if request.param == "sqlite":
        path = tmp_path / "outrun.db"
        dead: Store = SQLiteStore(path)
        racing = claim_before_save(SQLiteStore)(path)
    else:
        url = request.getfixturevalue("redis_url") + "&clock=caller"
        dead = RedisStore.from_url(url)
        racing = claim_before_save(RedisStore).from_url(url)
    await dead.open()
    yield dead, racing
    await dead.close()


async def test_a_save_outrun_by_its_own_start_claim_does_not_lose_the_task(
    stores: tuple[Store, Any],
) -> None:
    dead, store = stores
    now = time.time()
    task = Task("a", "job", b'{"n":1}', created_s=now - 5)
    task.transition(L.QUEUED, now - 5, None)
    await dead.insert([task])
    # A worker started it and died: its lease ran out long ago, the row says RUNNING.
    (lease,) = await dead.claim_start(["a"], "dead", now - 10, 1.0)
    task.transition(L.SCHEDULED, now - 10, None)
    task.transition(L.RUNNING, now - 10, None)
    assert await dead.save([task], {"a": lease}) == []
    scheduler = Scheduler(store=store, lease_s=5.0, poll_interval_s=0.01)
    ran: list[int] = []

    @scheduler.task("job")
    async def job(n: int) -> int:
        await store.outrun_saved.wait()  # running while the stale save is answered
        ran.append(n)
        return n

    async with scheduler:
        assert await scheduler.wait_for("a", timeout=5) == 1
    assert store.outrun == ["a"], "the save should have been fenced by the replaced lease"
    assert ran == [1]
    stored = await dead.get("a")
    assert stored is not None and stored.lifecycle is L.COMPLETED
    assert await dead.claim(["a"], "someone", time.time(), 1.0) == []  # finished, not held
