"""Following a task another process may be running: wake on the store's change
notification (the shared-store poller's rounds), read the stored task, stop once
it has ended.  Without a poller (a scheduler that is only connected, as the CLI
is) it reads at a gentle fixed pace instead."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from asched.clock import monotonic
from asched.model import Task

if TYPE_CHECKING:
    from asched.engine.loop import Engine

#: Pace of the reads when nothing tells us the store changed.
UNWATCHED_PACE_S = 0.2
#: A read at least this often even when no change is announced.
FALLBACK_S = 1.0
#: At most one read per watcher in this long, however often the store changes.
MIN_GAP_S = 0.1
#: While this process holds the task, its store row is read only this often.
HELD_READ_S = 5.0


async def until_ended(engine: Engine, task_id: str, timeout_s: float | None) -> Task | None:
    """The stored task once it is terminal, or None after ``timeout_s`` (or when it
    is gone from the store)."""
    return await until(engine, task_id, _ended, timeout_s)


async def until(
    engine: Engine, task_id: str, done: Callable[[Task], bool], timeout_s: float | None
) -> Task | None:
    """The stored task once ``done(task)`` or it is terminal; None after ``timeout_s``
    or when it is gone.  No read while this process holds the task itself (its own
    copy is ahead of the store), except every HELD_READ_S."""
    deadline = None if timeout_s is None else monotonic() + timeout_s
    last_read_s = -HELD_READ_S
    while True:
        now = monotonic()
        if not engine.holds(task_id) or now - last_read_s >= HELD_READ_S:
            last_read_s = now
            stored = await engine.store.get(task_id)
            if stored is None or stored.is_terminal or done(stored):
                return stored
        left_s = FALLBACK_S if deadline is None else deadline - monotonic()
        if left_s <= 0:
            return None
        coordinator = engine.shared_coordinator
        if coordinator is None or not engine.is_running:
            await asyncio.sleep(min(left_s, UNWATCHED_PACE_S))
        else:
            await coordinator.cluster.changed(min(left_s, FALLBACK_S))
            await asyncio.sleep(min(left_s, MIN_GAP_S))


def _ended(task: Task) -> bool:
    return task.is_terminal
