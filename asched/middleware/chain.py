"""The middleware chain: hooks run in order; a hook that raises stops the step
with a :class:`MiddlewareError` naming it, and nothing is changed."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from asched.errors import MiddlewareError
from asched.model import Task

logger = logging.getLogger(__name__)
_HOOKS = ("before_schedule", "before_run", "after_run")


class Middleware(Protocol):
    """Any of the three hooks may be left out (the chain only calls what exists).

    ``before_schedule(task)`` runs before a new task is stored: raise to refuse it.
    ``before_run(task)`` runs before each attempt starts: raise to fail the attempt.
    ``after_run(task, outcome)`` runs after each attempt (``outcome`` is the state
    the task entered: COMPLETED, RETRYING, FAILED or CANCELLED).  Hooks are
    synchronous and run on the scheduler's loop: keep them quick.
    """


class MiddlewareChain:
    __slots__ = ("after_run", "before_run", "before_schedule", "links")

    def __init__(self) -> None:
        self.links: list[Any] = []
        self.before_schedule: list[tuple[str, Any]] = []
        self.before_run: list[tuple[str, Any]] = []
        self.after_run: list[tuple[str, Any]] = []

    def add(self, middleware: Any) -> None:
        name = getattr(middleware, "name", type(middleware).__name__)
        hooks = [
            h for h in ("before_schedule", "before_run", "after_run") if hasattr(middleware, h)
        ]
        if not hooks:
            raise MiddlewareError(name, "has none of before_schedule, before_run, after_run")
        self.links.append(middleware)
        for hook in hooks:
            getattr(self, hook).append((name, getattr(middleware, hook)))

    def run_before_schedule(self, task: Task) -> None:
        for name, hook in self.before_schedule:
            try:
                hook(task)
            except MiddlewareError:
                raise
            except Exception as exc:
                raise _refusal(name, "before_schedule", exc) from exc

    def run_before_run(self, task: Task) -> None:
        for name, hook in self.before_run:
            try:
                hook(task)
            except MiddlewareError:
                raise
            except Exception as exc:
                raise _refusal(name, "before_run", exc) from exc

    def run_after_run(self, task: Task, outcome: Any) -> None:
        for name, hook in self.after_run:
            try:
                hook(task, outcome)
            except Exception as exc:  # the outcome is already decided: report, go on
                logger.exception(
                    "middleware %s.after_run failed on task %s: %s", name, task.id, exc
                )


def _refusal(name: str, step: str, exc: Exception) -> MiddlewareError:
    return MiddlewareError(name, f"{step} raised {type(exc).__name__}: {exc}")
