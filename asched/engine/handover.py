"""The engine's side of sharing a store with other processes: what happens when a
claim is granted or refused, when a lease is lost, and when a task is adopted
from the store.  The coordinator in :mod:`asched.engine.shared` calls these."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING

from asched.engine.attempts import LEASE_LOST
from asched.engine.policies import OUTCOME_ABANDONED
from asched.model import Task
from asched.model.states import FAILED, QUEUED, RETRYING, RUNNING, SCHEDULED
from asched.stores.base import Lease

if TYPE_CHECKING:
    from asched.engine.loop import Engine


def claim_granted(engine: Engine, task: Task, lease: Lease) -> bool:
    """This process now leases a task it wanted, and the store has it RUNNING: start
    it if it still should run -- unless its attempts took their workers down more
    than ``max_retries`` times, then it fails.  False if it should not run now."""
    if task.lifecycle not in (SCHEDULED, RETRYING):
        return False
    now = engine.clock.now()
    if lease.crashes > task.retries:
        task.retries = lease.crashes  # attempts another process started and never finished
    if lease.crashes > task.max_retries:
        engine.outcomes.report(task, OUTCOME_ABANDONED, now)
        engine.release(task)
        # The claim recorded it RUNNING; it ends there without running its handler.
        engine.move(task, RUNNING, now, "claimed; its handler is not started again")
        _fail_crashed(engine, task, lease.crashes, now)
        return True
    writeback = engine.writeback
    stale = writeback is not None and task.id in writeback.dirty
    engine.begin(task, now)
    if not stale and writeback is not None and task.lifecycle is RUNNING:
        # The claim already stored RUNNING; the rest of the record (start time,
        # history) rides along with the attempt's outcome.
        writeback.dirty.pop(task.id, None)
    return True


def _fail_crashed(engine: Engine, task: Task, crashes: int, now_s: float) -> None:
    reason = f"worker died during {crashes} attempt{'' if crashes == 1 else 's'}"
    task.error = reason
    task.finished_s = now_s
    engine.move(task, FAILED, now_s, reason)
    engine.settle(task)


def claim_refused(engine: Engine, task: Task, *, taken: bool) -> None:
    """A wanted task will not start here: give its slot (and any breaker trial) back;
    forget it if another process holds it now."""
    engine.outcomes.report(task, OUTCOME_ABANDONED, engine.clock.now())
    engine.release(task)
    if taken:
        engine.forget(task)


def runs_here(engine: Engine, task: Task) -> bool:
    """Whether this process has a handler for the task: one that has none (a
    producer script, say) leaves the task in the store for a worker that has."""
    return task.type in engine.registry


def pass_on(engine: Engine, task: Task) -> None:
    """Leave a task this process cannot run to the others: its slot back, the task
    forgotten here; the store still says QUEUED, unleased."""
    engine.outcomes.report(task, OUTCOME_ABANDONED, engine.clock.now())
    engine.release(task)
    engine.forget(task)


def lost(engine: Engine, task_id: str) -> None:
    """Another process holds this task now: stop any attempt here, write nothing."""
    task = engine.active.get(task_id)
    if task is None:
        return
    if task.lifecycle is RUNNING and engine.attempts.cancel(task, LEASE_LOST):
        return
    engine.disarm(task)
    engine.forget(task)


def outrun(
    engine: Engine, leases: Mapping[str, Lease], refused: Sequence[str], fences: Mapping[str, Lease]
) -> set[str]:
    """Of the fenced saves the store refused, those whose lease this process has
    itself replaced since they were queued (a start-claim committed first): nobody
    else took those tasks, so they are written again under the newer lease
    instead of being given up.  Returns their ids."""
    again: set[str] = set()
    for task_id in refused:
        held, used = leases.get(task_id), fences.get(task_id)
        task = engine.active.get(task_id)
        if held is not None and used is not None and held.token > used.token and task is not None:
            engine.touch(task)
            again.add(task_id)
    return again


def adopt(engine: Engine, task: Task, lease: Lease, now_s: float) -> None:
    """A due task this process just leased from the store: run it here.  A task
    still RUNNING there is a takeover: its owner's lease ran out mid-attempt (it
    died, or stalled past its lease).  The lost attempt is counted and recorded;
    past ``max_retries`` such attempts the task fails."""
    engine.active[task.id] = task
    engine.state_counts[task.lifecycle] += 1
    if task.lifecycle is RUNNING:
        crashes = max(lease.crashes, 1)
        if crashes > task.max_retries or task.retries >= task.max_retries:
            _fail_crashed(engine, task, crashes, now_s)
            return
        task.retries = max(task.retries + 1, crashes)
        reason = (
            f"taken over: an attempt lost its lease while running (its worker died or "
            f"stalled); counted as attempt {task.retries}"
        )
        engine.move(task, QUEUED, now_s, reason)
    if task.lifecycle is QUEUED:
        engine.arm(task, now_s)
    else:
        engine.place(task, now_s)


def active_ids(engine: Engine) -> Collection[str]:
    """The tasks a claim of this process must skip: those it holds or is inserting."""
    if engine.arriving:
        return engine.active.keys() | engine.arriving.keys()
    return engine.active.keys()


def running_task(engine: Engine, task_id: str) -> bool:
    task = engine.active.get(task_id)
    return task is not None and task.lifecycle is RUNNING


def room_to_claim(engine: Engine) -> int:
    """How many due tasks to claim from the store now: none while stopping or
    when this process has no handler at all (a producer only adds work)."""
    limits = engine.limits
    if engine.is_closing or not engine.registry.names():
        return 0
    return limits.total_limit - limits.running - len(engine.line)
