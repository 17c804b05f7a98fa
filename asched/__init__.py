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
from asched.notifiers import LoggingNotifier, WebhookNotifier
from asched.observability.alerts import Alert, AlertKind, Notifier, Severity
from asched.observability.thresholds import AlertThresholds
from asched.scheduler import Scheduler
from asched.strategies import CircuitBreaker, Retry, RetryPolicy, circuit_breaker, retry
from asched.strategies.priority import Ageing, FairShare, PriorityStrategy

__version__ = "0.1.0"

__all__ = [
    "Ageing",
    "Alert",
    "AlertKind",
    "AlertThresholds",
    "AschedError",
    "BreakerSettings",
    "CircuitBreaker",
    "CircuitOpenError",
    "ConfigError",
    "DependencyError",
    "FairShare",
    "InvalidTransitionError",
    "LoggingNotifier",
    "Notifier",
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
    "Severity",
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
    "WebhookNotifier",
    "WorkerCrashedError",
    "__version__",
    "circuit_breaker",
    "retry",
]
