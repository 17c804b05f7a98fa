"""LocalExecutor: plain callables run inline, on the loop's own thread.

Only for quick functions: while one runs, nothing else on the loop does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asched.executors.base import Executor


class LocalExecutor(Executor):
    name = "local"
    wants_coroutines = False

    def run(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Awaitable[Any]:
        return _inline(fn, kwargs)


async def _inline(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    return fn(**kwargs)
