"""The handler registry: task type name → handler and its execution policy.

Handlers are found here by the task's type; nothing is ever imported by a name
read from a store.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from asched.core.backoff import check_backoff_factor
from asched.core.bounds import MAX_INTERVAL_S
from asched.core.checks import require_int, require_number
from asched.errors import TaskValidationError

F = TypeVar("F", bound=Callable[..., Any])

EXECUTOR_NAMES = ("async", "local", "thread", "process", "distributed", "distributed-process")
#: run on broker workers; "distributed" takes coroutine functions and plain ones
DISTRIBUTED = ("distributed", "distributed-process")


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    """What the scheduler knows about one task type."""

    name: str
    handler: Callable[..., Any]
    executor: str
    max_retries: int | None
    backoff_factor: float | None
    timeout_s: float | None
    concurrency: int | None


class Registry:
    def __init__(self) -> None:
        #: name -> definition; read directly on the engine's hot path
        self.definitions: dict[str, TaskDefinition] = {}

    def __contains__(self, name: object) -> bool:
        return name in self.definitions

    def get(self, name: str) -> TaskDefinition | None:
        return self.definitions.get(name)

    def names(self) -> list[str]:
        return list(self.definitions)

    def register(
        self,
        name: str,
        handler: Callable[..., Any],
        *,
        executor: str | None = None,
        max_retries: int | None = None,
        backoff_factor: float | None = None,
        timeout: float | None = None,
        concurrency: int | None = None,
    ) -> TaskDefinition:
        if not isinstance(name, str) or not name:
            raise TaskValidationError("name", name, "a task type name must be a non-empty string")
        if name in self.definitions:
            raise TaskValidationError("name", name, "a handler is already registered for it")
        executor = _executor_for(handler, executor)
        check_retries(max_retries)
        check_backoff(backoff_factor)
        check_timeout(timeout)
        if concurrency is not None:
            require_int("concurrency", concurrency, minimum=1)
        definition = TaskDefinition(
            name,
            handler,
            executor,
            max_retries,
            None if backoff_factor is None else float(backoff_factor),
            None if timeout is None else float(timeout),
            concurrency,
        )
        self.definitions[name] = definition
        return definition

    def verify_importable(self, name: str | None = None) -> None:
        """Check that a worker process can import each process-executor handler (or
        only ``name``'s) by its module and name; a TaskValidationError if not."""
        from asched.executors.process import handler_reference

        chosen = self.definitions.values() if name is None else [self.definitions[name]]
        for definition in chosen:
            if definition.executor in ("process", "distributed-process"):
                handler_reference(definition.handler)


def _executor_for(handler: Callable[..., Any], executor: str | None) -> str:
    """The executor a handler runs on: the one asked for, if it suits the handler."""
    if not callable(handler):
        raise TaskValidationError("handler", handler, "must be callable")
    is_coroutine = inspect.iscoroutinefunction(handler)
    if executor is None:
        executor = "async" if is_coroutine else "thread"
    if executor not in EXECUTOR_NAMES:
        raise TaskValidationError(
            "executor", executor, f"unknown executor; one of {', '.join(EXECUTOR_NAMES)}"
        )
    if executor == "distributed-process" and is_coroutine:
        reason = f"handler {handler!r} is a coroutine function; use 'distributed'"
        raise TaskValidationError("executor", executor, reason)
    if executor == "async" and not is_coroutine:
        raise TaskValidationError(
            "executor", executor, f"handler {handler!r} is not a coroutine function"
        )
    if executor not in ("async", "distributed") and is_coroutine:
        raise TaskValidationError(
            "executor", executor, f"handler {handler!r} is a coroutine function; use 'async'"
        )
    if executor in ("process", "distributed-process"):
        from asched.executors.process import handler_shape

        # Only the shape here: under a decorator the module does not name the
        # function yet; Registry.verify_importable() checks that at start and first use.
        handler_shape(handler)
    return executor


#: the most retries a task may ask for (a bound keeps every count storable)
MAX_RETRIES = 1_000_000


def check_retries(value: Any) -> None:
    if value is not None:
        require_int("max_retries", value, minimum=0, maximum=MAX_RETRIES)


def check_backoff(value: Any) -> None:
    if value is not None:
        check_backoff_factor(value)


def check_timeout(value: Any) -> None:
    if value is not None:
        require_number("timeout", value, above=0, maximum=MAX_INTERVAL_S, unit="seconds")
