"""Tasks held by dependencies: released when every dependency completed, cancelled
(naming the dependency) when one ended any other way."""

from __future__ import annotations

from typing import TYPE_CHECKING

from asched.model import Task
from asched.model.states import CANCELLED, COMPLETED, QUEUED

if TYPE_CHECKING:
    from asched.engine.loop import Engine


def settle(engine: Engine, task: Task) -> None:
    """Release the dependents of a task that completed; cancel those of one that did not."""
    now = engine.clock.now()
    if task.lifecycle is COMPLETED:
        for dep_id in engine.deps.completed(task.id):
            dependent = engine.active.get(dep_id)
            if dependent is not None and not dependent.user_paused:
                engine.move(dependent, QUEUED, now, f"dependency {task.id} completed")
                engine.arm(dependent, now)
        return
    for dep_id in engine.deps.failed(task.id):
        dependent = engine.active.get(dep_id)
        if dependent is not None and not dependent.is_terminal:
            reason = f"dependency {task.id} ended {task.lifecycle.name}"
            engine.move(dependent, CANCELLED, now, reason)
            engine.settle(dependent)
