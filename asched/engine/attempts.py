"""Running attempts: a task's handler on its executor, its timeout, and how it ended.

The engine decides when an attempt starts; this module starts it on the
right executor and turns the way it ended (a result, an exception, a timeout,
a cancel and its cause) into one call on the engine's :class:`AttemptSink`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import orjson

from asched.clock import Clock
from asched.config import SchedulerConfig
from asched.engine.registry import Registry
from asched.errors import SchedulerStateError, TaskTimeoutError
from asched.executors import AsyncExecutor, Executor, LocalExecutor, ProcessExecutor, ThreadExecutor
from asched.model import Task
from asched.model.states import RUNNING

_EMPTY = b"{}"

#: Why the loop cancelled an attempt.  A cancel from outside the scheduler (the
#: loop being torn down) is a shutdown too; a ``CancelledError`` that nobody
#: asked for (the handler raised it, or something it awaited was cancelled)
#: is a failure of the attempt like any other exception.
CANCEL_REQUESTED = "cancelled"
TIMED_OUT = "timeout"
LEASE_LOST = "lease lost"
SHUTDOWN = "shutdown"


class AttemptSink(Protocol):
    """How an attempt ended, as the engine hears it."""

    def attempt_succeeded(self, task: Task, result: Any) -> None: ...

    def attempt_failed(self, task: Task, error: str, exc: BaseException) -> None: ...

    def attempt_abandoned(self, task: Task) -> None: ...

    def attempt_interrupted(self, task: Task) -> None: ...

    def attempt_lost(self, task: Task) -> None: ...


class Attempts:
    def __init__(self, config: SchedulerConfig, registry: Registry, sink: AttemptSink) -> None:
        self._definitions = registry.definitions
        self._sink = sink
        self._reasons: dict[str, str] = {}
        #: attempts cancelled before their first step (see cancel)
        self._cancel_at_start: set[str] = set()
        self._sizes = {"thread": config.thread_pool_size, "process": config.process_pool_size}
        self._create_task: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]] = _no_loop_yet
        #: told when settling an attempt raises (the engine then fails loudly)
        self.on_broken: Callable[[str, BaseException], None] = _reraise
        self.executors: dict[str, Executor] = {
            "async": AsyncExecutor(),
            "local": LocalExecutor(),
            "thread": ThreadExecutor(config.thread_pool_size),
            "process": ProcessExecutor(config.process_pool_size),
        }

    def pool_sizes(self) -> dict[str, int | None]:
        """How many attempts each executor can run at once (None: no fixed pool)."""
        return {name: self._sizes.get(name) for name in self.executors}

    async def start(self) -> None:
        self._create_task = asyncio.get_running_loop().create_task
        for executor in self.executors.values():
            await executor.start()

    async def shutdown(self) -> None:
        for executor in self.executors.values():
            await executor.shutdown()

    def start_reason(self, task: Task) -> str | None:
        """What the move to RUNNING records ("dispatched" for broker workers)."""
        executor = self.executors.get(task.executor_type)
        return None if executor is None else executor.start_reason

    def begin(self, task: Task, now_s: float, clock: Clock) -> str | None:
        """Start the handler of a RUNNING task; an error text if it cannot start."""
        definition = self._definitions.get(task.type)
        if definition is None:
            return f"no handler is registered for task type {task.type!r}"
        raw = task.data_json
        kwargs: dict[str, Any] = {} if raw == _EMPTY else orjson.loads(raw)
        if task.executor_type == "async":  # in the loop: the common case first
            task._handle = self._create_task(self._run(task, definition.handler(**kwargs)))
            if task.timeout_s is not None:
                self._arm_timeout(task, now_s, clock)
            return None
        executor = self.executors.get(task.executor_type)
        if executor is None:
            return f"this scheduler has no {task.executor_type!r} executor (no broker set?)"
        attempt = executor.run_task(task, definition.handler, kwargs)
        task._handle = self._create_task(self._run(task, attempt))
        if task.timeout_s is not None and not executor.owns_timeouts:
            self._arm_timeout(task, now_s, clock)
        return None

    def _arm_timeout(self, task: Task, now_s: float, clock: Clock) -> None:
        clock.call_at(now_s + (task.timeout_s or 0.0), lambda: self._time_out(task, now_s, clock))

    def cancel(self, task: Task, why: str) -> bool:
        """Cancel a running attempt for ``why``; False if none is running."""
        handle = task._handle
        if isinstance(handle, asyncio.Task) and not handle.done():
            self._reasons[task.id] = why
            coro = handle.get_coro()
            if (
                inspect.iscoroutine(coro)
                and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED
            ):
                # Not started yet: a cancel now would end it before its first line,
                # outside its try blocks, and nothing would ever settle the attempt.
                self._cancel_at_start.add(task.id)
            else:
                handle.cancel()
            return True
        return False

    async def _run(self, task: Task, attempt: Any) -> None:
        sink = self._sink
        try:
            if self._cancel_at_start and task.id in self._cancel_at_start:
                self._cancel_at_start.discard(task.id)
                _discard(attempt)
                self._after_cancellation(task, asyncio.CancelledError())
                return
            try:
                result = await attempt
            except asyncio.CancelledError as exc:
                self._after_cancellation(task, exc)
            except BaseException as exc:
                self._reasons.pop(task.id, None)  # a cancel it turned into another error
                # SystemExit, KeyboardInterrupt, GeneratorExit and other BaseExceptions
                # a handler raises end its attempt here: let through, they would stop
                # the loop (or end this task silently) and leave the task RUNNING.
                if task.lifecycle is RUNNING:
                    sink.attempt_failed(task, describe(exc), exc)
                else:
                    sink.attempt_abandoned(task)
            else:
                if self._reasons:  # a cancel the handler swallowed must not outlive it
                    self._reasons.pop(task.id, None)
                if task.lifecycle is RUNNING:
                    sink.attempt_succeeded(task, result)
                else:
                    sink.attempt_abandoned(task)
        except Exception as exc:
            # Settling the attempt failed: the engine's books are no longer sound.
            self.on_broken("engine (settling an attempt)", exc)

    def _time_out(self, task: Task, started_s: float, clock: Clock) -> None:
        if task.lifecycle is RUNNING and task.started_s == started_s:
            deadline = started_s + (task.timeout_s or 0.0)
            if clock.now() < deadline:  # clock timers may run a little early
                clock.call_at(deadline, lambda: self._time_out(task, started_s, clock))
                return
            self.cancel(task, TIMED_OUT)

    def _after_cancellation(self, task: Task, exc: asyncio.CancelledError) -> None:
        reason = self._reasons.pop(task.id, None)
        sink = self._sink
        if reason is None and not _cancelled_from_outside():
            reason = "unrequested"
        if reason == LEASE_LOST:
            sink.attempt_lost(task)
        elif task.lifecycle is not RUNNING:  # cancel_task already settled it
            sink.attempt_abandoned(task)
        elif reason == TIMED_OUT:
            timeout = TaskTimeoutError(task.id, task.timeout_s or 0.0)
            sink.attempt_failed(task, f"timed out after {task.timeout_s:g}s", timeout)
        elif reason == "unrequested":
            sink.attempt_failed(task, describe(exc), exc)
        else:
            sink.attempt_interrupted(task)


def _discard(attempt: Any) -> None:
    """Drop an attempt that never ran (no "never awaited" warning, no stray work)."""
    if inspect.iscoroutine(attempt):
        attempt.close()
    elif isinstance(attempt, asyncio.Future):
        attempt.cancel()


def _cancelled_from_outside() -> bool:
    """Whether the running attempt's task was cancelled (not just handed a
    ``CancelledError`` by the code it awaited)."""
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0


def _reraise(what: str, exc: BaseException) -> None:
    raise exc


def _no_loop_yet(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    coro.close()
    raise SchedulerStateError("attempts started before the engine")


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
