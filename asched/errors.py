"""Every error asched raises, rooted at :class:`AschedError`.

::

    AschedError
    ├── ConfigError                (ValueError)   a SchedulerConfig field is invalid
    ├── TaskValidationError        (ValueError)   a task field is invalid
    │   ├── UnknownOptionError     (+ TypeError)  an unknown keyword argument
    │   ├── UnknownTaskTypeError   (+ LookupError) no handler registered for the type
    │   └── DependencyError                       unknown dependency id or a cycle
    ├── TaskNotFoundError          (LookupError)  no task with that id
    ├── ScheduleNotFoundError      (LookupError)  no recurring schedule with that id
    ├── InvalidTransitionError     (RuntimeError) the lifecycle table forbids a change
    ├── SchedulerStateError        (RuntimeError) scheduler not started / shutting down
    │   └── SchedulerCrashedError                 a background task of the scheduler died
    ├── TaskHeldElsewhereError     (RuntimeError) another process holds (runs) the task
    ├── TaskFailedError            (RuntimeError) awaited task ended FAILED
    ├── TaskCancelledError                        awaited task ended CANCELLED
    ├── TaskTimeoutError           (TimeoutError) an attempt or a wait ran out of time
    ├── CircuitOpenError                          a circuit breaker refused the call
    ├── ProcessTaskError           (RuntimeError) a handler raised in a worker process
    ├── WorkerCrashedError         (RuntimeError) a worker process died mid-task
    ├── MiddlewareError            (RuntimeError) a middleware hook refused or failed
    ├── DashboardError             (OSError)      the dashboard could not serve
    └── StoreError                                a store could not do its job
        ├── StoreBusyError                        the store stayed locked past a deadline
        ├── StoreFullError                        the disk is full
        └── StoreCorruptError                     a stored record cannot be read

Each constructor takes the offending field, value or id and builds the message,
so every message names what was wrong.
"""

from __future__ import annotations

import reprlib
import signal
from collections.abc import Iterable
from typing import Any


class AschedError(Exception):
    """Root of every error raised by asched."""


class ConfigError(AschedError, ValueError):
    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"invalid config {field}={value!r}: {reason}")


class TaskValidationError(AschedError, ValueError):
    def __init__(self, field: str, value: Any, reason: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"invalid {field}={_short(value)}: {reason}")


class UnknownOptionError(TaskValidationError, TypeError):
    """A keyword the call does not take; a ``TypeError`` too, as Python's own would be."""

    def __init__(self, name: str, value: Any, known: Iterable[str] = ()) -> None:
        hint = f"; expected one of: {', '.join(sorted(known))}" if known else ""
        super().__init__(name, value, f"unknown keyword argument{hint}")


class UnknownTaskTypeError(TaskValidationError, LookupError):
    def __init__(self, task_type: Any, known: list[str] | None = None) -> None:
        hint = f"; registered types: {', '.join(sorted(known))}" if known else ""
        super().__init__("task_type", task_type, f"no handler is registered for it{hint}")


class DependencyError(TaskValidationError):
    pass


class TaskNotFoundError(AschedError, LookupError):
    def __init__(self, task_id: Any) -> None:
        self.task_id = task_id
        super().__init__(f"no task with id {task_id!r}")


class ScheduleNotFoundError(AschedError, LookupError):
    def __init__(self, schedule_id: Any) -> None:
        self.schedule_id = schedule_id
        super().__init__(f"no recurring schedule with id {schedule_id!r}")


class InvalidTransitionError(AschedError, RuntimeError):
    def __init__(self, task_id: str, current: Any, target: Any) -> None:
        self.task_id = task_id
        self.current = current
        self.target = target
        super().__init__(
            f"task {task_id!r} cannot go from {getattr(current, 'name', current)} "
            f"to {getattr(target, 'name', target)}"
        )


class SchedulerStateError(AschedError, RuntimeError):
    pass


class SchedulerCrashedError(SchedulerStateError):
    """One of the scheduler's own background tasks died; the scheduler takes no more work."""

    def __init__(self, what: str, cause: BaseException | None) -> None:
        self.what = what
        self.cause = cause
        why = "it ended unexpectedly" if cause is None else f"{type(cause).__name__}: {cause}"
        super().__init__(f"the scheduler stopped working: its {what} died ({why})")


class TaskHeldElsewhereError(AschedError, RuntimeError):
    """Another process holds the task (it is running there): this one cannot change it."""

    def __init__(self, task_id: str, state: str) -> None:
        self.task_id = task_id
        super().__init__(f"task {task_id} is {state} in another process; it was not changed")


class TaskFailedError(AschedError, RuntimeError):
    def __init__(self, task_id: str, error: str | None) -> None:
        self.task_id = task_id
        self.error = error
        super().__init__(f"task {task_id!r} failed: {error}")


class TaskCancelledError(AschedError):
    def __init__(self, task_id: str, reason: str | None = None) -> None:
        self.task_id = task_id
        self.reason = reason
        super().__init__(f"task {task_id!r} was cancelled" + (f": {reason}" if reason else ""))


class TaskTimeoutError(AschedError, TimeoutError):
    def __init__(self, task_id: str, timeout_s: float, what: str = "attempt") -> None:
        self.task_id = task_id
        self.timeout_s = timeout_s
        super().__init__(f"task {task_id!r}: {what} timed out after {timeout_s:g}s")


class CircuitOpenError(AschedError):
    def __init__(self, name: str, retry_after_s: float | None = None) -> None:
        self.name = name
        self.retry_after_s = retry_after_s
        after = f"; retry after {retry_after_s:.3g}s" if retry_after_s is not None else ""
        super().__init__(f"circuit {name!r} is open{after}")


class MiddlewareError(AschedError, RuntimeError):
    """A middleware hook refused or failed; the step it guarded did not happen."""

    def __init__(self, middleware: str, reason: str) -> None:
        self.middleware = middleware
        super().__init__(f"middleware {middleware}: {reason}")


class DashboardError(AschedError, OSError):
    """The dashboard could not serve (for example its port is taken)."""


class StoreError(AschedError):
    pass


class StoreBusyError(StoreError):
    pass


class StoreFullError(StoreError):
    pass


class StoreCorruptError(StoreError):
    pass


def _short(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except RecursionError:  # nested thousands of levels deep
        text = _SHALLOW.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_SHALLOW = reprlib.Repr()
_SHALLOW.maxlevel = 3


class ProcessTaskError(AschedError, RuntimeError):
    """A handler raised in a worker process; the message keeps its ``TypeName: message``."""

    def __init__(self, error_type: str, message: str, traceback: str = "") -> None:
        self.error_type = error_type
        self.error_message = message
        self.traceback = traceback
        super().__init__(f"{error_type}: {message}" if message else error_type)


class WorkerCrashedError(AschedError, RuntimeError):
    """A worker process died (crash, signal, ``os._exit``) while it ran a handler."""

    def __init__(self, handler: str, pid: int | None, exitcode: int | None) -> None:
        self.handler = handler
        self.pid = pid
        self.exitcode = exitcode
        super().__init__(f"worker process {pid} died running {handler}: {_exit_status(exitcode)}")


def _exit_status(exitcode: int | None) -> str:
    if exitcode is None:
        return "exit status unknown"
    if exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        return f"killed by signal {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"killed by signal {-exitcode}"
