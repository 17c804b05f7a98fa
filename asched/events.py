"""Frozen, past-tense events.  The audit trail and the metrics both consume them.

Every lifecycle change emits exactly one :class:`TaskEvent` subclass chosen by
the state the task entered.  Subscribers get them synchronously on the
scheduler's loop, so a subscriber must be quick (hand slow work to a task).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from asched.core.breaker import BreakerState
from asched.model import TaskLifecycle, TaskPriority


class Event:
    """Base of every event a scheduler emits."""

    __slots__ = ()


class _TaskEventFields(NamedTuple):
    task_id: str
    task_type: str
    priority: TaskPriority
    at_s: float
    from_state: TaskLifecycle
    to_state: TaskLifecycle
    reason: str | None
    #: when the task's latest attempt started (None before its first)
    started_s: float | None = None
    #: when the task was (or, entering RETRYING, the failed attempt was) due
    due_s: float = 0.0


class TaskEvent(_TaskEventFields, Event):
    """A task changed state.  An immutable tuple: one is built per transition that
    somebody listens to, so it must be cheap (a frozen dataclass costs 5x more)."""

    __slots__ = ()


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


@dataclass(frozen=True, slots=True)
class CircuitStateChanged(Event):
    """A circuit breaker guarding some tasks changed state."""

    name: str
    from_state: BreakerState
    to_state: BreakerState
    at_s: float
    reason: str


class CircuitOpened(CircuitStateChanged):
    __slots__ = ()


class CircuitHalfOpened(CircuitStateChanged):
    __slots__ = ()


class CircuitClosed(CircuitStateChanged):
    __slots__ = ()


EVENT_FOR_BREAKER_STATE: dict[BreakerState, type[CircuitStateChanged]] = {
    BreakerState.OPEN: CircuitOpened,
    BreakerState.HALF_OPEN: CircuitHalfOpened,
    BreakerState.CLOSED: CircuitClosed,
}
