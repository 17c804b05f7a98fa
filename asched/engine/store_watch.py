"""Following a task another process may be running: wake on the store's change
notification (the shared-store poller's rounds), read the stored task, stop once
it has ended.  Without a poller (a scheduler that is only connected, as the CLI
is) it reads at a gentle fixed pace instead."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from asched.clock import monotonic
from asched.model import Task

if TYPE_CHECKING:
    from asched.engine.loop import Engine

#: Pace of the reads when nothing tells us the store changed.
UNWATCHED_PACE_S = 0.2
#: A read at least this often even when no change is announced.
FALLBACK_S = 1.0


async def until_ended(engine: Engine, task_id: str, timeout_s: float | None) -> Task | None:
    """The stored task once it is terminal, or None after ``timeout_s`` (or when it
    is gone from the store)."""
    deadline = None if timeout_s is None else monotonic() + timeout_s
    while True:
        stored = await engine.store.get(task_id)
        if stored is None or stored.is_terminal:
            return stored
        left_s = FALLBACK_S if deadline is None else deadline - monotonic()
        if left_s <= 0:
            return None
        coordinator = engine.shared_coordinator
        if coordinator is None or not engine.is_running:
            await asyncio.sleep(min(left_s, UNWATCHED_PACE_S))
        else:
            await coordinator.cluster.changed(min(left_s, FALLBACK_S))
