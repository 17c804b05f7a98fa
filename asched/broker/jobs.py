"""Running one task message on a broker worker: the local executor it uses, its
timeout, and the report item its outcome becomes."""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import orjson

from asched.broker import protocol as p
from asched.executors import Executor, LocalExecutor, ProcessExecutor, ThreadExecutor

#: executor names a handler registers with to run on broker workers, and the
#: worker-side executor each uses ("auto": coroutine functions in the loop, the
#: others on threads)
DISTRIBUTED_EXECUTORS = {"distributed": "auto", "distributed-process": "process"}


@dataclass(eq=False, slots=True)
class Delivery:
    """One task message (it may carry several tasks): acked once all are reported."""

    generation: int  # of the connection it came on; tags mean nothing on another
    tag: int
    remaining: int


@dataclass(eq=False, slots=True)
class Job:
    """One task a worker holds, from delivery to acknowledgement."""

    token: str
    task_id: str
    task_type: str
    kwargs: dict[str, Any]
    timeout_s: float | None
    reply_to: str
    #: every delivery of a message carrying this task (a redelivery adds one)
    deliveries: list[Delivery] = field(default_factory=list)
    handle: asyncio.Task[None] | None = None
    started_timer: asyncio.TimerHandle | None = None
    cancel_requested: bool = False


def read_tasks(message: dict[str, Any]) -> list[Job]:
    """The jobs of a task message; raises KeyError, TypeError or ValueError if malformed."""
    if message.get("k") != p.TASKS:
        raise ValueError(f"not a task message: {message.get('k')!r}")
    reply_to = message["reply"]
    entries = message["tasks"]
    if not isinstance(reply_to, str) or not isinstance(entries, list) or not entries:
        raise TypeError("a task message needs a reply queue and a list of tasks")
    found = []
    for entry in entries:
        kwargs = entry["data"]
        timeout = entry.get("timeout")
        if not isinstance(kwargs, dict):
            raise TypeError("task data must be a JSON object")
        found.append(
            Job(
                str(entry["token"]),
                str(entry["id"]),
                str(entry["type"]),
                kwargs,
                None if timeout is None else float(timeout),
                reply_to,
            )
        )
    return found


class LocalExecutors:
    """The worker's own executors, started on first use."""

    def __init__(self, thread_pool_size: int, process_pool_size: int) -> None:
        self._factories = {
            "thread": lambda: ThreadExecutor(thread_pool_size),
            "process": lambda: ProcessExecutor(process_pool_size),
            "local": LocalExecutor,
        }
        self._started: dict[str, Executor] = {}

    async def get(self, kind: str) -> Executor:
        executor = self._started.get(kind)
        if executor is None:
            executor = self._factories[kind]()
            await executor.start()
            self._started[kind] = executor
        return executor

    async def shutdown(self) -> None:
        for executor in self._started.values():
            await executor.shutdown()
        self._started.clear()


async def execute(job: Job, handler: Any, kind: str, executors: LocalExecutors) -> bytes:
    """Run the handler and return its report item, JSON-encoded."""
    try:
        if job.timeout_s is None:
            result = await _start(handler, kind, job.kwargs, executors)
        else:
            result = await _within(job.timeout_s, _start(handler, kind, job.kwargs, executors))
    except asyncio.CancelledError:
        if not job.cancel_requested:
            raise
        return cancelled(job)
    except _WorkerTimeout:
        message = f"timed out after {job.timeout_s:g}s on the worker"
        return orjson.dumps(p.error_item(job.token, job.task_id, "TaskTimeoutError", message))
    except Exception as exc:
        return _error(job, exc)
    try:
        return orjson.dumps({"t": job.token, "id": job.task_id, "s": p.OK, "r": result})
    except TypeError as exc:
        message = f"the result of {job.task_type} is not JSON-serializable: {exc}"
        return orjson.dumps(p.error_item(job.token, job.task_id, "TypeError", message))


class _WorkerTimeout(Exception):
    """The task's own timeout ran out (a TimeoutError the handler raised is not this)."""


async def _within(timeout_s: float, work: Awaitable[Any]) -> Any:
    scope = asyncio.timeout(timeout_s)
    try:
        async with scope:
            return await work
    except TimeoutError:
        if scope.expired():
            raise _WorkerTimeout from None
        raise


async def _start(handler: Any, kind: str, kwargs: dict[str, Any], executors: LocalExecutors) -> Any:
    if kind == "auto":
        if inspect.iscoroutinefunction(handler):
            return await handler(**kwargs)
        kind = "thread"
    executor = await executors.get(kind)
    attempt: Awaitable[Any] = executor.run(handler, kwargs)
    return await attempt


def _error(job: Job, exc: BaseException) -> bytes:
    item = p.error_item(
        job.token, job.task_id, type(exc).__name__, str(exc), traceback.format_exc()
    )
    return orjson.dumps(item)


def no_handler(job: Job) -> bytes:
    message = f"no handler is registered for task type {job.task_type!r} on this worker"
    return orjson.dumps(p.error_item(job.token, job.task_id, "UnknownTaskTypeError", message))


def cancelled(job: Job) -> bytes:
    return orjson.dumps({"t": job.token, "id": job.task_id, "s": p.CANCELLED})


def started(job: Job) -> bytes:
    return orjson.dumps({"t": job.token, "id": job.task_id, "s": p.STARTED})
