"""asched: an asyncio task-scheduling engine."""

from __future__ import annotations

from asched.config import SchedulerConfig
from asched.core.breaker import BreakerSettings
from asched.core.ratelimit import RateLimit
from asched.errors import (
    AschedError,
    CircuitOpenError,
    ConfigError,
    DependencyError,
    InvalidTransitionError,
    ProcessTaskError,
    ScheduleNotFoundError,
    SchedulerCrashedError,
    SchedulerStateError,
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFoundError,
    TaskTimeoutError,
    TaskValidationError,
    UnknownOptionError,
    UnknownTaskTypeError,
    WorkerCrashedError,
)
from asched.events import TaskEvent
from asched.facade import SchedulerFacade
from asched.model import Task, TaskLifecycle, TaskMetadata, TaskPriority, Transition
from asched.scheduler import Scheduler
from asched.strategies import CircuitBreaker, Retry, RetryPolicy, circuit_breaker, retry
from asched.strategies.priority import Ageing, FairShare, PriorityStrategy

__version__ = "0.1.0"

__all__ = [
    "Ageing",
    "AschedError",
    "BreakerSettings",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConfigError",
    "DependencyError",
    "FairShare",
    "InvalidTransitionError",
    "PriorityStrategy",
    "ProcessTaskError",
    "RateLimit",
    "Retry",
    "RetryPolicy",
    "ScheduleNotFoundError",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerCrashedError",
    "SchedulerFacade",
    "SchedulerStateError",
    "StoreBusyError",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "Task",
    "TaskCancelledError",
    "TaskEvent",
    "TaskFailedError",
    "TaskLifecycle",
    "TaskMetadata",
    "TaskNotFoundError",
    "TaskPriority",
    "TaskTimeoutError",
    "TaskValidationError",
    "Transition",
    "UnknownOptionError",
    "UnknownTaskTypeError",
    "WorkerCrashedError",
    "__version__",
    "circuit_breaker",
    "retry",
]
