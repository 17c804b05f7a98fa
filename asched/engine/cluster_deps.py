"""Dependencies across workers on a shared store.

A dependant may be armed in several processes (its creator, any that recovered
it, one whose poller adopted it), and its dependencies may run anywhere.  Two
rules keep it right:

* Before a task with dependencies is claimed to start, its dependencies are read
  (this process's own unwritten results first, then the store).  Unmet ones hold
  it PAUSED here; one that ended other than COMPLETED cancels it, naming it.  So
  no worker's poller or recovery starts a dependant early.
* A dependant stored PAUSED that no process holds (its creator stopped, say) is
  found by a sweep of the stored PAUSED tasks: once its dependencies have ended,
  the worker that wins its lease releases or cancels it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from asched.engine import handover
from asched.model import Task
from asched.model.states import CANCELLED, COMPLETED, PAUSED, QUEUED

if TYPE_CHECKING:
    from asched.engine.loop import Engine
    from asched.engine.shared import SharedStoreCoordinator

logger = logging.getLogger(__name__)

#: The sweep of stored PAUSED tasks runs at most this often, and looks at this many.
SWEEP_EVERY_S = 2.0
SWEEP_LIMIT = 500


async def dependency_states(engine: Engine, task: Task) -> dict[str, Task | None]:
    """Each dependency as this process knows it best: its own copy while it is held
    or not yet written here, else the stored one (None when it is gone)."""
    found: dict[str, Task | None] = {}
    dirty = engine.writeback.dirty if engine.writeback is not None else {}
    for dep in task.dependencies:
        local = engine.active.get(dep) or dirty.get(dep)
        found[dep] = local if local is not None else await engine.store.get(dep)
    return found


def verdict(states: dict[str, Task | None]) -> tuple[list[str], Task | None]:
    """(the dependencies still to wait for, the first that ended otherwise)."""
    unmet: list[str] = []
    for dep, stored in states.items():
        if stored is None or stored.lifecycle is COMPLETED:
            continue  # a purged dependency finished long ago
        if stored.is_terminal:
            return [], stored
        unmet.append(dep)
    return unmet, None


async def ready_to_start(engine: Engine, task: Task) -> bool:
    """Check a due task's dependencies before its start-claim.  False when it must
    not start: it is held (PAUSED, its slot given back) or was cancelled."""
    unmet, failed = verdict(await dependency_states(engine, task))
    if failed is None and not unmet:
        return True
    if task.is_terminal or task.id not in engine.active:
        return False  # changed meanwhile (cancelled, forgotten)
    handover.claim_refused(engine, task, taken=False)
    engine.disarm(task)
    now = engine.clock.now()
    if failed is not None:
        _cancel(engine, task, failed, now)
    else:
        engine.deps.hold(task.id, unmet)
        engine.move(task, PAUSED, now, f"waiting for dependencies: {', '.join(unmet)}")
    return False


def _cancel(engine: Engine, task: Task, failed: Task, now_s: float) -> None:
    engine.deps.forget(task.id)
    reason = f"dependency {failed.id} ended {failed.lifecycle.name}"
    engine.move(task, CANCELLED, now_s, reason)
    task.finished_s = now_s
    engine.settle(task)


async def sweep(coordinator: SharedStoreCoordinator, engine: Engine) -> None:
    """Release or cancel stored PAUSED dependants nobody here holds whose
    dependencies have ended, each under a lease this process wins."""
    for stored in await engine.store.list_tasks(PAUSED, limit=SWEEP_LIMIT):
        if stored.user_paused or not stored.dependencies or engine.holds(stored.id):
            continue
        unmet, failed = verdict(await dependency_states(engine, stored))
        if unmet:
            continue
        now = engine.clock.now()
        leases = await engine.store.claim([stored.id], engine.owner, now, coordinator.lease_s)
        if not leases:
            continue  # another worker holds it: its holder settles it
        task = await engine.store.get(stored.id)
        if task is None or task.lifecycle is not PAUSED or task.user_paused:
            await engine.store.release(leases)
            continue
        coordinator.leases[task.id] = leases[0]
        engine.active[task.id] = task
        engine.state_counts[task.lifecycle] += 1
        if failed is not None:
            _cancel(engine, task, failed, now)
        else:
            engine.move(task, QUEUED, now, "its dependencies completed")
            engine.arm(task, now)
