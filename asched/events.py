"""Frozen, past-tense events.  The audit trail and the metrics both consume them.

Every lifecycle change emits exactly one :class:`TaskEvent` subclass chosen by
the state the task entered.  Subscribers get them synchronously on the
scheduler's loop, so a subscriber must be quick (hand slow work to a task).
"""

from __future__ import annotations

from dataclasses import dataclass

from asched.model import TaskLifecycle, TaskPriority


@dataclass(frozen=True, slots=True)
class TaskEvent:
    task_id: str
    task_type: str
    priority: TaskPriority
    at_s: float
    from_state: TaskLifecycle
    to_state: TaskLifecycle
    reason: str | None


class TaskQueued(TaskEvent):
    __slots__ = ()


class TaskScheduled(TaskEvent):
    __slots__ = ()


class TaskPaused(TaskEvent):
    __slots__ = ()


class TaskStarted(TaskEvent):
    __slots__ = ()


class TaskRetrying(TaskEvent):
    __slots__ = ()


class TaskCompleted(TaskEvent):
    __slots__ = ()


class TaskFailed(TaskEvent):
    __slots__ = ()


class TaskCancelled(TaskEvent):
    __slots__ = ()


EVENT_FOR_STATE: dict[TaskLifecycle, type[TaskEvent]] = {
    TaskLifecycle.QUEUED: TaskQueued,
    TaskLifecycle.SCHEDULED: TaskScheduled,
    TaskLifecycle.PAUSED: TaskPaused,
    TaskLifecycle.RUNNING: TaskStarted,
    TaskLifecycle.RETRYING: TaskRetrying,
    TaskLifecycle.COMPLETED: TaskCompleted,
    TaskLifecycle.FAILED: TaskFailed,
    TaskLifecycle.CANCELLED: TaskCancelled,
}
