"""ThreadExecutor: plain callables on a bounded thread pool, for blocking I/O.

A running thread cannot be killed.  When its task times out or is cancelled,
the task is marked at once and the thread's eventual result is discarded; the
pool slot frees when the function returns.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asched.executors.base import Executor


class ThreadExecutor(Executor):
    name = "thread"
    wants_coroutines = False

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max_workers
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix="asched")

    async def shutdown(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def run(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Awaitable[Any]:
        if self._pool is None:
            raise RuntimeError("ThreadExecutor used before start()")
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._pool, functools.partial(fn, **kwargs))
