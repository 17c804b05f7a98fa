"""ProcessExecutor: module-level functions on a pool of worker processes, for CPU-bound work.

Each worker process runs one call at a time and talks to the scheduler over its
own socket pair, in length-prefixed orjson frames.  The handler crosses by
reference (module and qualified name) and is imported in the worker; arguments
and results cross as JSON, never pickled.

Workers are independent, so a worker that crashes or is killed fails only its
own call: it is reaped, and a replacement starts when one is next needed.
Cancelling a call (a per-task timeout, ``cancel_task``) kills the worker running
it: SIGTERM, then SIGKILL after a short grace.

Workers are daemonic: a handler cannot start processes of its own.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any, NoReturn

import orjson

from asched.errors import (
    ConfigError,
    SchedulerStateError,
    TaskValidationError,
    WorkerCrashedError,
)
from asched.executors.base import Executor
from asched.executors.process_reap import stop_process
from asched.executors.process_wire import decode_reply, exchange, find_by_qualname
from asched.executors.process_worker import worker_main

_START_METHODS = ("forkserver", "spawn")

_Grant = asyncio.Future["_Worker | None"]  # a waiter gets a worker, or None: "start one"


@dataclass(eq=False, slots=True)
class _Worker:
    process: BaseProcess
    sock: socket.socket  # the scheduler's end, non-blocking
    child_sock: socket.socket | None  # the worker's end, until the process has it
    pid: int | None = None
    ending: asyncio.Task[int | None] | None = None


class ProcessExecutor(Executor):
    """Runs plain module-level functions in up to ``max_workers`` worker processes.

    Workers start on demand; calls beyond ``max_workers`` wait, first come first
    served, for a free worker.  ``start_method`` is ``"forkserver"`` (``"spawn"``
    where the platform has no fork server) or ``"spawn"``.
    """

    name = "process"
    wants_coroutines = False

    def __init__(
        self, max_workers: int, *, start_method: str = "forkserver", term_grace_s: float = 0.2
    ) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigError("process_pool_size", max_workers, "must be an integer >= 1")
        if start_method not in _START_METHODS:
            raise ConfigError("start_method", start_method, f"must be one of {_START_METHODS}")
        if start_method not in multiprocessing.get_all_start_methods():
            start_method = "spawn"
        self.start_method = start_method
        self._context = multiprocessing.get_context(start_method)
        self._max_workers = max_workers
        self._term_grace_s = term_grace_s
        self._slots = 0  # workers alive or starting
        self._workers: set[_Worker] = set()
        self._idle: list[_Worker] = []
        self._waiters: deque[_Grant] = deque()
        self._launches: set[asyncio.Future[None]] = set()
        self._chores: set[asyncio.Task[int | None]] = set()
        self._closed = False

    async def start(self) -> None:
        self._closed = False

    async def shutdown(self) -> None:
        self._closed = True
        while (waiter := self._next_waiter()) is not None:
            waiter.set_exception(SchedulerStateError("the process executor shut down"))
        if self._launches:
            await asyncio.wait(self._launches)
        self._idle.clear()
        for worker in list(self._workers):
            self._begin_retire(worker, kill=True)
        if self._chores:
            await asyncio.wait(self._chores)

    def run(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Awaitable[Any]:
        # The engine calls run() inside its dispatcher, so errors travel in the awaitable.
        try:
            module, qualname = handler_reference(fn)
            request = orjson.dumps({"module": module, "qualname": qualname, "kwargs": kwargs})
        except TaskValidationError as exc:
            return _raise(exc)
        except TypeError as exc:
            return _raise(TaskValidationError("task_data", kwargs, f"not JSON-serializable: {exc}"))
        return self._call(f"{module}.{qualname}", request)

    # -- one call ------------------------------------------------------------------

    async def _call(self, handler: str, request: bytes) -> Any:
        worker = await self._acquire()
        try:
            reply = await exchange(worker.sock, request)
        except asyncio.CancelledError:
            await self._retire(worker, kill=True)
            raise
        except OSError:
            reply = None
        except BaseException:
            self._begin_retire(worker, kill=True)
            raise
        if reply is None:
            exitcode = await self._retire(worker, kill=False)
            raise WorkerCrashedError(handler, worker.pid, exitcode)
        self._release(worker)
        return decode_reply(reply)

    # -- the pool ------------------------------------------------------------------

    async def _acquire(self) -> _Worker:
        if self._closed:
            raise SchedulerStateError("the process executor is shut down")
        while self._idle:
            worker = self._idle.pop()
            if worker.process.is_alive():
                return worker
            self._begin_retire(worker, kill=False)  # died while idle (OOM killer, kill -9)
        if self._slots < self._max_workers:
            self._slots += 1
            return await self._start_worker()
        waiter: _Grant = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            granted = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted as the cancel landed
                self._pass_on(waiter.result())
            raise
        return granted if granted is not None else await self._start_worker()

    async def _start_worker(self) -> _Worker:
        """Start a worker in the slot the caller holds."""
        if self._closed:
            self._free_slot()
            raise SchedulerStateError("the process executor is shut down")
        try:
            worker = self._new_worker()
        except BaseException:
            self._free_slot()
            raise
        # Process.start() pickles the bootstrap data and waits on the fork server.
        launch = asyncio.get_running_loop().run_in_executor(None, _launch, worker)
        self._launches.add(launch)
        launch.add_done_callback(self._launches.discard)
        try:
            await asyncio.shield(launch)
        except asyncio.CancelledError:
            launch.add_done_callback(lambda done: self._adopt(worker, done))
            raise
        except BaseException:
            self._abandon(worker)
            raise
        return worker

    def _new_worker(self) -> _Worker:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        process = self._context.Process(  # type: ignore[attr-defined]  # BaseContext stub
            target=worker_main, args=(theirs,), name="asched-process-worker", daemon=True
        )
        worker = _Worker(process, ours, theirs)
        self._workers.add(worker)
        return worker

    def _adopt(self, worker: _Worker, launch: asyncio.Future[None]) -> None:
        """A launch whose caller was cancelled has finished: keep the worker for others."""
        if launch.cancelled() or launch.exception() is not None:
            self._abandon(worker)
        else:
            self._release(worker)

    def _abandon(self, worker: _Worker) -> None:
        """Forget a worker whose process never started."""
        self._workers.discard(worker)
        worker.sock.close()
        self._free_slot()

    def _release(self, worker: _Worker) -> None:
        """A healthy worker is free: hand it to the longest waiter, else park it."""
        if self._closed:
            self._begin_retire(worker, kill=True)
            return
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(worker)
        else:
            self._idle.append(worker)

    def _free_slot(self) -> None:
        """A worker is gone: the longest waiter may start a replacement, else the slot frees."""
        waiter = None if self._closed else self._next_waiter()
        if waiter is not None:
            waiter.set_result(None)
        else:
            self._slots -= 1

    def _pass_on(self, granted: _Worker | None) -> None:
        if granted is None:
            self._free_slot()
        else:
            self._release(granted)

    def _next_waiter(self) -> _Grant | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None

    # -- retiring workers ------------------------------------------------------------

    async def _retire(self, worker: _Worker, *, kill: bool) -> int | None:
        """Stop and reap the worker, free its slot; return its exit code.  Survives a
        second cancellation of the caller: the work goes on in its own task."""
        return await asyncio.shield(self._begin_retire(worker, kill=kill))

    def _begin_retire(self, worker: _Worker, *, kill: bool) -> asyncio.Task[int | None]:
        if worker.ending is None:
            worker.ending = asyncio.get_running_loop().create_task(self._end(worker, kill))
            self._chores.add(worker.ending)
            worker.ending.add_done_callback(self._chores.discard)
        return worker.ending

    async def _end(self, worker: _Worker, kill: bool) -> int | None:
        self._workers.discard(worker)
        try:
            # A worker that hung up by itself is usually exiting: let it, to keep its
            # exit code; a worker being cancelled gets SIGTERM straight away.
            patience_s = 0.0 if kill else self._term_grace_s
            return await stop_process(worker.process, patience_s, self._term_grace_s)
        finally:
            # Closed only now: at shutdown a call may still be reading from it.
            worker.sock.close()
            self._free_slot()


# -- scheduler side helpers ------------------------------------------------------------


def handler_reference(fn: Callable[..., Any]) -> tuple[str, str]:
    """The (module, qualified name) a worker imports ``fn`` by; rejects what it cannot.

    Call it once the handler's module is fully imported (the scheduler does, at
    start and when a task type is first scheduled): under a decorator the name
    is only bound after the decorator has returned."""
    module, qualname = handler_shape(fn)
    if find_by_qualname(sys.modules.get(module), qualname) is not fn:
        reason = f"{module}.{qualname} does not name this object, so a worker could not find it"
        raise TaskValidationError("handler", fn, reason)
    return module, qualname


def handler_shape(fn: Callable[..., Any]) -> tuple[str, str]:
    """What can be checked while the handler is being defined: it has a module and
    a qualified name, and that name is not a lambda's or a nested function's."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        reason = "the process executor needs a module-level function, found by module and name"
        raise TaskValidationError("handler", fn, reason)
    if "<lambda>" in qualname:
        reason = "a lambda cannot run in a worker process; use a module-level function"
        raise TaskValidationError("handler", fn, reason)
    if "<locals>" in qualname:
        reason = "a nested function cannot run in a worker process; define it at module level"
        raise TaskValidationError("handler", fn, reason)
    return module, qualname


async def _raise(exc: BaseException) -> NoReturn:
    raise exc


def _launch(worker: _Worker) -> None:
    """Start the worker's process (on a thread) and drop our copy of its socket."""
    try:
        worker.process.start()
        worker.pid = worker.process.pid
    finally:
        if worker.child_sock is not None:
            worker.child_sock.close()
            worker.child_sock = None
