"""AsyncExecutor: coroutine handlers run as tasks on the scheduler's own loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asched.executors.base import Executor


class AsyncExecutor(Executor):
    name = "async"
    wants_coroutines = True

    def run(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Awaitable[Any]:
        result: Awaitable[Any] = fn(**kwargs)
        return result
