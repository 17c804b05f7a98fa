"""``asched purge --older-than SECONDS``: delete old finished tasks by hand."""

from __future__ import annotations

from asched.cli.format import plural
from asched.cli.ops import reading
from asched.clock import wall_now
from asched.engine.retention import BATCH
from asched.stores import Store


async def purge_finished(store: Store, older_than_s: float, task_type: str | None) -> None:
    """Delete, batch by batch, finished tasks that finished ``older_than_s`` ago."""
    only = None if task_type is None else [task_type]
    total = 0
    async with reading(store):
        before_s = wall_now() - older_than_s
        while True:
            deleted = await store.purge_finished(before_s, BATCH, only)
            total += deleted
            if deleted < BATCH:
                break
    print(f"purged {plural(total, 'finished task')}")
