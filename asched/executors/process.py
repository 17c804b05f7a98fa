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
import importlib
import logging
import multiprocessing
import signal
import socket
import struct
import sys
import traceback
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any, NoReturn

import orjson

from asched.errors import ProcessTaskError, TaskValidationError, WorkerCrashedError
from asched.executors.base import Executor

logger = logging.getLogger(__name__)

_FRAME = struct.Struct("!Q")  # the byte length that prefixes every message
_CHUNK = 1 << 20
_REAP_S = 5.0  # how long a SIGKILLed process may take to vanish before we give up on it
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
            raise ValueError(f"max_workers must be an integer >= 1, not {max_workers!r}")
        if start_method not in _START_METHODS:
            raise ValueError(f"start_method must be one of {_START_METHODS}, not {start_method!r}")
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
            waiter.set_exception(RuntimeError("the process executor shut down"))
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
            reply = await _exchange(worker.sock, request)
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
        return _decode_reply(reply)

    # -- the pool ------------------------------------------------------------------

    async def _acquire(self) -> _Worker:
        if self._closed:
            raise RuntimeError("the process executor is shut down")
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
            raise RuntimeError("the process executor is shut down")
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
            target=_worker_main, args=(theirs,), name="asched-process-worker", daemon=True
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
            return await _stop_process(worker.process, patience_s, self._term_grace_s)
        finally:
            # Closed only now: at shutdown a call may still be reading from it.
            worker.sock.close()
            self._free_slot()


# -- scheduler side helpers ------------------------------------------------------------


def handler_reference(fn: Callable[..., Any]) -> tuple[str, str]:
    """The (module, qualified name) a worker imports ``fn`` by; rejects what it cannot."""
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
    if _find(sys.modules.get(module), qualname) is not fn:
        reason = f"{module}.{qualname} does not name this object, so a worker could not find it"
        raise TaskValidationError("handler", fn, reason)
    return module, qualname


def _find(namespace: Any, qualname: str) -> Any:
    for part in qualname.split("."):
        namespace = getattr(namespace, part, None)
    return namespace


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


async def _exchange(sock: socket.socket, request: bytes) -> bytes | None:
    """Send one request and read its reply; None if the worker hung up."""
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, _FRAME.pack(len(request)) + request)
    header = await _receive(loop, sock, _FRAME.size)
    if header is None:
        return None
    return await _receive(loop, sock, _FRAME.unpack(header)[0])


async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = await loop.sock_recv(sock, min(size - len(data), _CHUNK))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _decode_reply(reply: bytes) -> Any:
    message = orjson.loads(reply)
    if "result" in message:
        return message["result"]
    error = message["error"]
    raise ProcessTaskError(error["type"], error["message"], error["traceback"])


async def _stop_process(process: BaseProcess, patience_s: float, grace_s: float) -> int | None:
    """Wait ``patience_s`` for the process to exit, then SIGTERM, then SIGKILL; reap it."""
    steps: tuple[tuple[Callable[[], None] | None, float], ...] = (
        (None, patience_s),
        (process.terminate, grace_s),
        (process.kill, _REAP_S),
    )
    for send, wait_s in steps:
        if send is not None:
            send()
        if await _exited(process, wait_s):
            # The sentinel fired, so the process is gone or a few instructions from
            # becoming a zombie: this join does not wait in practice.
            process.join(_REAP_S)
            exitcode = process.exitcode
            if exitcode is not None:
                process.close()
            return exitcode
    logger.warning("worker process %s survived SIGKILL; leaving it", process.pid)
    return None


async def _exited(process: BaseProcess, timeout_s: float) -> bool:
    """Wait, without blocking the loop, until the process has exited."""
    if process.exitcode is not None:
        return True
    if timeout_s <= 0:
        return False
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()
    sentinel = process.sentinel
    loop.add_reader(sentinel, _set_done, exited)
    try:
        await asyncio.wait_for(exited, timeout_s)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(sentinel)
    return True


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# -- worker side ---------------------------------------------------------------------


def _worker_main(sock: socket.socket) -> None:
    """A worker process: answer one request at a time until the scheduler hangs up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the scheduler, which stops us
    handlers: dict[str, Callable[..., Any]] = {}
    with sock:
        try:
            while (request := _read_frame(sock)) is not None:
                reply = _answer(request, handlers)
                sock.sendall(_FRAME.pack(len(reply)) + reply)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the scheduler went away


def _read_frame(sock: socket.socket) -> bytes | None:
    header = _read_exact(sock, _FRAME.size)
    return None if header is None else _read_exact(sock, _FRAME.unpack(header)[0])


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray(size)
    view = memoryview(data)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:])
        if count == 0:
            return None
        got += count
    return bytes(data)


def _answer(request: bytes, handlers: dict[str, Callable[..., Any]]) -> bytes:
    name = "the handler"
    try:
        call = orjson.loads(request)
        name = f"{call['module']}.{call['qualname']}"
        fn = handlers.get(name)
        if fn is None:
            fn = handlers[name] = _import(call["module"], call["qualname"])
        result = fn(**call["kwargs"])
    except BaseException as exc:  # SystemExit, KeyboardInterrupt...: reported, not fatal
        return _error_reply(type(exc).__name__, str(exc), traceback.format_exc())
    try:
        return orjson.dumps({"result": result})
    except TypeError as exc:
        message = f"the result of {name} is not JSON-serializable: {exc}"
        return _error_reply("TypeError", message, "")


def _import(module: str, qualname: str) -> Callable[..., Any]:
    found: object = _find(importlib.import_module(module), qualname)
    if not callable(found):
        raise LookupError(f"no callable {module}.{qualname} in the worker process")
    return found


def _error_reply(error_type: str, message: str, trace: str) -> bytes:
    error = {"type": error_type, "message": _utf8(message), "traceback": _utf8(trace)}
    return orjson.dumps({"error": error})


def _utf8(text: str) -> str:
    """orjson refuses lone surrogates; escape them."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
