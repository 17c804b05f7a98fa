"""The engine's side of sharing a store with other processes: what happens when a
claim is granted or refused, when a lease is lost, and when a task is adopted
from the store.  The coordinator in :mod:`asched.engine.shared` calls these."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from asched.engine.attempts import LEASE_LOST
from asched.engine.policies import OUTCOME_ABANDONED
from asched.model import Task
from asched.model.states import FAILED, QUEUED, RETRYING, RUNNING, SCHEDULED

if TYPE_CHECKING:
    from asched.engine.loop import Engine


def claim_granted(engine: Engine, task: Task) -> bool:
    """This process now leases a task it wanted: start it if it still should run."""
    if task.lifecycle not in (SCHEDULED, RETRYING):
        return False
    engine.begin(task, engine.clock.now())
    return True


def claim_refused(engine: Engine, task: Task, *, taken: bool) -> None:
    """A wanted task will not start here: give its slot (and any breaker trial) back;
    forget it if another process holds it now."""
    engine.report(task, OUTCOME_ABANDONED, engine.clock.now())
    engine.release(task)
    if taken:
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


def adopt(engine: Engine, task: Task, now_s: float) -> None:
    """A due task this process just leased from the store: run it here."""
    engine.active[task.id] = task
    engine.state_counts[task.lifecycle] += 1
    if task.lifecycle is RUNNING:  # its owner's lease ran out mid-attempt
        reason = "lease expired while running; its owner is presumed dead"
        if task.retries >= task.max_retries:
            task.error = reason
            task.finished_s = now_s
            engine.move(task, FAILED, now_s, reason)
            engine.settle(task)
            return
        task.retries += 1
        engine.move(task, QUEUED, now_s, f"{reason}; attempt {task.retries} counted")
    if task.lifecycle is QUEUED:
        engine.arm(task, now_s)
    else:
        engine.place(task, now_s)


def active_ids(engine: Engine) -> Collection[str]:
    return engine.active.keys()


def running_task(engine: Engine, task_id: str) -> bool:
    task = engine.active.get(task_id)
    return task is not None and task.lifecycle is RUNNING


def room_to_claim(engine: Engine) -> int:
    limits = engine.limits
    return 0 if engine.is_closing else limits.total_limit - limits.running - len(engine.line)
