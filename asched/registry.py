"""The handler registry: task type name → handler and its execution policy.

Handlers are found here by the task's type; nothing is ever imported by a name
read from a store.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

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
            from asched.executors.process import handler_reference

            handler_reference(handler)  # a worker process must be able to import it
        check_retries(max_retries)
        check_backoff(backoff_factor)
        check_timeout(timeout)
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise TaskValidationError("concurrency", concurrency, "must be an integer >= 1")
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


def check_retries(value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise TaskValidationError("max_retries", value, "must be an integer >= 0")


def check_backoff(value: Any) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not value >= 1
    ):
        raise TaskValidationError("backoff_factor", value, "must be a number >= 1")


def check_timeout(value: Any) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not value > 0
    ):
        raise TaskValidationError("timeout", value, "must be a number of seconds > 0")
