"""ThreadExecutor: plain callables on a bounded pool of threads, for blocking I/O.

A running thread cannot be killed, by asched or by anything else in Python.
When its task times out or is cancelled, the task is marked at once and the
thread's eventual result is discarded; its pool slot frees when the function
returns.  At shutdown, a handler still running after the grace period is
handed back (QUEUED) like any other, and its thread is left behind: the pool's
threads are daemon threads, so one stuck in ``time.sleep(600)`` does not keep
the process from exiting (``concurrent.futures`` pools are joined at exit,
which is why this executor has a pool of its own).  Until the process exits,
such a thread runs on; make blocking calls time out where you can.
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

from asched.errors import SchedulerStateError
from asched.executors.base import Executor

_Work = tuple[Future[Any], Callable[[], Any]] | None  # None: a thread should exit


class DaemonThreadPool:
    """Up to ``max_workers`` daemon threads, started as work arrives, that run
    submitted calls in order; ``shutdown`` lets idle threads end and abandons busy ones."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._max_workers = max_workers
        self._name = name
        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._closed = False

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise SchedulerStateError("the thread executor is shut down")
            self._work.put((future, fn))
            if self._idle == 0 and self._threads < self._max_workers:
                self._threads += 1
                name = f"{self._name}-{self._threads}"
                threading.Thread(target=self._serve, name=name, daemon=True).start()
            else:
                self._idle -= 1  # an idle thread takes it (or it waits for one)
        return future

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            threads = self._threads
        for _ in range(threads):
            self._work.put(None)

    def _serve(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, fn = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # reported to the awaiting attempt
                    future.set_exception(exc)
            del item, future, fn  # drop references before waiting again
            with self._lock:
                self._idle += 1


class ThreadExecutor(Executor):
    name = "thread"
    wants_coroutines = False

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max_workers
        self._pool: DaemonThreadPool | None = None

    async def start(self) -> None:
        if self._pool is None:
            self._pool = DaemonThreadPool(self._max_workers, "asched")

    async def shutdown(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown()

    def run(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Awaitable[Any]:
        if self._pool is None:
            raise SchedulerStateError("ThreadExecutor used before start()")
        future = self._pool.submit(functools.partial(fn, **kwargs))
        return asyncio.wrap_future(future)
