"""The engine: one event loop owns every piece of mutable scheduler state.

Future tasks wait in the timer wheel, which arms a single clock timer for its
earliest deadline.  Due tasks move to the ready line, keyed on (priority, due
time, sequence).  The dispatcher starts them while the concurrency limits have
room; a finished attempt frees its slot and settles the task: completed,
retried after a backoff, failed, or cancelled.  No locks: every method here
runs on the loop.  Every state change goes through :meth:`Engine.move`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from asched.clock import Clock, WallClock
from asched.config import SchedulerConfig
from asched.core.dependencies import DependencyGraph
from asched.core.limits import ConcurrencyLimits
from asched.core.wheel import Timer
from asched.engine import control, dependents, lifecycle
from asched.engine.attempts import Attempts
from asched.engine.hub import EventHub, Service, announce, new_event
from asched.engine.hub import logger as hub_logger
from asched.engine.outcomes import Outcomes
from asched.engine.policies import Policies
from asched.engine.ready import ReadyLine
from asched.engine.registry import Registry
from asched.engine.retention import Retention
from asched.engine.settings import EngineSettings
from asched.engine.shared import SharedStoreCoordinator
from asched.engine.timers import ArmedWheel
from asched.errors import MiddlewareError, SchedulerCrashedError
from asched.events import EVENT_FOR_STATE
from asched.middleware.chain import MiddlewareChain
from asched.model import Task, TaskLifecycle, TaskPriority
from asched.model.states import (
    CANCELLED,
    CREATED,
    PAUSED,
    QUEUED,
    RUNNING,
    SCHEDULED,
)
from asched.stores import Store
from asched.strategies.priority import FairShare, PriorityStrategy

logger = logging.getLogger(__name__)

#: Unmet dependency ids, and the first dependency that ended without completing.
DependencyPlan = tuple[Sequence[str], str | None]
_NO_PLAN: DependencyPlan = ((), None)


class Engine(EngineSettings):
    """Arms, dispatches, runs and settles tasks.  :class:`asched.Scheduler` holds one.

    Its settings and read-only views are in :mod:`asched.engine.settings`."""

    def __init__(
        self,
        config: SchedulerConfig,
        store: Store,
        clock: Clock | None,
        policies: Policies,
        ranker: PriorityStrategy | None,
        fair: FairShare | None,
    ) -> None:
        self.config = config
        self.registry = Registry()
        self.policies = policies
        self.limits: ConcurrencyLimits[str, Task] = ConcurrencyLimits(
            config.max_concurrency, config.key_concurrency
        )
        self.line = ReadyLine(self.limits, policies, ranker, fair, self._defer_until)
        self.outcomes = Outcomes(self)
        self.attempts = Attempts(config, self.registry, self.outcomes)
        self.clock_override = clock
        #: who this engine is when it leases tasks in a store
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.clock: Clock = clock or WallClock()
        self.loop: asyncio.AbstractEventLoop  # set by start()
        self.wheel: ArmedWheel[Task]  # set by start()
        self.services: list[Service] = []
        self.hub = EventHub()
        self.middleware = MiddlewareChain()
        self._hears = self.hub.by_state
        self.active: dict[str, Task] = {}
        #: tasks whose insert is in flight: stored (or about to be), not yet active
        self.arriving: dict[str, Task] = {}
        self.deps = DependencyGraph()
        self.waiters: dict[str, list[asyncio.Future[Task]]] = {}
        self.state_counts = [0] * (len(TaskLifecycle) + 1)
        self._dispatch_pending = False
        self.is_closing = False
        self.is_running = False
        self.stopped = True  # until start(); stop() cleans up once
        self.shared_coordinator: SharedStoreCoordinator | None = None
        #: set when a background task died (see asched.engine.watchdog)
        self.failure: SchedulerCrashedError | None = None
        self.crashed: asyncio.Future[SchedulerCrashedError] | None = None  # set by start()
        #: per task type, a ``result_ttl_s`` overriding the configured one
        self.result_ttls: dict[str, float | None] = {}
        self.retention: Retention | None = None
        #: this worker's load figures, sent with its registry heartbeat (set by the API)
        self.worker_figures: Callable[[], dict[str, Any]] | None = None
        self._use_store(store)

    # -- the one door for state changes ------------------------------------------------

    def move(self, task: Task, target: TaskLifecycle, now_s: float, reason: str | None) -> None:
        """Table-checked, recorded, counted, announced and written back."""
        previous = task.lifecycle
        task.transition(target, now_s, reason)
        counts = self.state_counts
        counts[previous] -= 1
        counts[target] += 1
        hears = self._hears[target]
        if hears:  # announce() inline: this runs for every transition
            fields = (
                task.id,
                task.type,
                task.priority,
                now_s,
                previous,
                target,
                reason,
                task.started_s,
                task.due_s,
            )
            event = new_event(EVENT_FOR_STATE[target], fields)
            for listener in hears:  # emit() inline
                try:
                    listener(event)
                except Exception:
                    hub_logger.exception("event listener %r failed on %r", listener, event)
        # SCHEDULED only says "armed in this process": a store gains nothing from
        # it (a restart re-arms QUEUED tasks), so it rides along with the next write.
        if target is not SCHEDULED and self.writeback is not None:
            self.writeback.touch(task)

    def touch(self, task: Task) -> None:
        """A field other than the state changed: write the task back."""
        if self.writeback is not None:
            self.writeback.touch(task)

    # -- admission and arming --------------------------------------------------------------

    async def submit(
        self, tasks: list[Task], now_s: float, plans: list[DependencyPlan] | None = None
    ) -> None:
        """Store validated tasks (all or nothing), then hold, cancel or arm each."""
        for task in tasks:
            task.transition(QUEUED, now_s, None)
        if self.memory is not None:
            self.memory.insert_now(tasks)
        else:
            await self._insert(tasks)
        for index, task in enumerate(tasks):
            unmet, failed = _NO_PLAN if plans is None else plans[index]
            self._admit(task, now_s, unmet, failed)

    async def submit_one(self, task: Task, now_s: float, plan: DependencyPlan | None) -> str:
        """:meth:`submit` for one task, without the batch's loops; returns its id."""
        if self.memory is not None:
            self.submit_now(task, now_s, plan)
            return task.id
        stored = self.store_lone(task, now_s)
        try:
            await stored
        finally:
            self.arriving.pop(task.id, None)
        self._admit(task, now_s, *(_NO_PLAN if plan is None else plan))
        return task.id

    def store_lone(self, task: Task, now_s: float) -> Awaitable[None]:
        """Queue one task's insert (errors raise here); await it, then call :meth:`stored`
        (``Scheduler.schedule_task`` does, so no engine coroutine per task)."""
        task.transition(QUEUED, now_s, None)
        arriving = self.arriving  # as in _insert
        arriving[task.id] = task
        try:
            return self.store.insert_soon((task,))
        except BaseException:
            arriving.pop(task.id, None)
            raise

    def stored(self, task: Task, committed: bool) -> str:
        self.arriving.pop(task.id, None)  # then admitted if its insert committed
        if committed:
            self._admit(task, self.clock.now(), (), None)
        return task.id

    def submit_now(self, task: Task, now_s: float, plan: DependencyPlan | None) -> None:
        """:meth:`submit_one` on the memory store, which never blocks: a caller that
        checked ``memory`` saves a coroutine per task by calling this directly."""
        task.transition(QUEUED, now_s, None)
        self.memory.insert_one(task)  # type: ignore[union-attr]
        if plan is not None:
            self._admit(task, now_s, *plan)
            return
        # _admit and place inline for a task with nothing to wait for: one frame
        # per scheduled task instead of three (tests/engine/test_fast_paths.py)
        self.active[task.id] = task
        self.state_counts[QUEUED] += 1
        hears = self._hears[QUEUED]
        if hears:
            announce(hears, task, now_s, CREATED, QUEUED, None)
        self.move(task, SCHEDULED, now_s, None)
        if task.due_s <= now_s:
            line = self.line
            if line.plain:
                line.queue.push(task.id, task.priority, task.due_s, task)
            else:
                line.push(task, now_s)
            if not self._dispatch_pending:
                self.request_dispatch()
        else:
            task._handle = self.wheel.insert(task.due_s, task)

    async def _insert(self, tasks: Sequence[Task]) -> None:
        """Store new tasks, holding them as arriving until admitted: a claim of this
        process's own poller that finds the new rows must leave them to this call."""
        arriving = self.arriving
        for task in tasks:
            arriving[task.id] = task
        try:
            await self.store.insert(tasks)
        finally:
            for task in tasks:
                arriving.pop(task.id, None)

    def _admit(self, task: Task, now_s: float, unmet: Sequence[str], failed: str | None) -> None:
        self.active[task.id] = task
        self.state_counts[QUEUED] += 1
        hears = self._hears[QUEUED]
        if hears:
            announce(hears, task, now_s, CREATED, QUEUED, None)
        if failed is not None:
            self.move(task, CANCELLED, now_s, f"dependency {failed} did not complete")
            self.settle(task)
        elif unmet:
            self.deps.hold(task.id, unmet)
            self.move(task, PAUSED, now_s, f"waiting for dependencies: {', '.join(unmet)}")
        else:
            self.move(task, SCHEDULED, now_s, None)
            self.place(task, now_s)

    def arm(self, task: Task, now_s: float) -> None:
        """QUEUED → SCHEDULED: into the ready line if due, else into the wheel."""
        self.move(task, SCHEDULED, now_s, None)
        self.place(task, now_s)

    def place(self, task: Task, now_s: float) -> None:
        if task.due_s <= now_s:
            self.line.push(task, now_s)
            if not self._dispatch_pending:
                self.request_dispatch()
        else:
            task._handle = self.wheel.insert(task.due_s, task)

    def _defer_until(self, task: Task, wake_s: float) -> None:
        task._handle = self.wheel.insert(wake_s, task)

    def disarm(self, task: Task) -> None:
        """Take a not-running task out of the wheel, the ready line and the parking."""
        handle = task._handle
        if isinstance(handle, Timer):
            self.wheel.cancel(handle)
            task._handle = None
        if self.line.remove(task, self.clock.now()):
            self.request_dispatch()

    def on_due(self, tasks: list[Task], now_s: float) -> None:
        line = self.line
        for task in tasks:
            task._handle = None
            line.push(task, now_s)
        if line:
            self._dispatch()

    # -- dispatching -------------------------------------------------------------------

    def request_dispatch(self) -> None:
        if not self._dispatch_pending:
            self._dispatch_pending = True
            self.loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_pending = False
        if self.is_closing:
            return
        now = self.clock.now()
        shared = self.shared_coordinator
        # With a shared store each starts once this process holds its lease.
        self.line.drain(now, self.begin if shared is None else shared.want)

    def begin(self, task: Task, now_s: float) -> None:
        """Start an attempt of a task whose concurrency slot is already taken."""
        reason = None if task.executor_type == "async" else self.attempts.start_reason(task)
        self.move(task, RUNNING, now_s, reason)
        task.started_s = now_s
        task.wait_reason = None
        if self.middleware.before_run:
            try:
                self.middleware.run_before_run(task)
            except MiddlewareError as exc:
                self.outcomes.fail(task, str(exc), now_s, exc, retry=False)
                return
        error = self.attempts.begin(task, now_s, self.clock)
        if error is not None:
            self.outcomes.fail(task, error, now_s, None, retry=False)

    def holds(self, task_id: str) -> bool:
        """Whether this process holds the task (armed, held or running here, or
        being inserted by it)."""
        return task_id in self.active or task_id in self.arriving

    def forget(self, task: Task) -> None:
        if self.active.pop(task.id, None) is not None:
            self.state_counts[task.lifecycle] -= 1
        if self.writeback is not None:
            self.writeback.dirty.pop(task.id, None)

    # -- settling ----------------------------------------------------------------------

    def release(self, task: Task) -> None:
        task._handle = None
        line = self.line
        limits = line.limits
        if task.concurrency_key is None and not limits.type_limits:
            limits.running -= 1  # ReadyLine.release's common case, inline
        else:
            line.release(task)
        if line.queue and not self._dispatch_pending:
            self.request_dispatch()

    def settle(self, task: Task) -> None:
        """A task reached a terminal state: wake waiters, release or cancel dependents."""
        self.active.pop(task.id, None)
        if self.hub.settled or self.waiters or self.deps.has_dependents:
            self._tell_watchers(task)

    def _tell_watchers(self, task: Task) -> None:
        for hook in self.hub.settled:
            hook(task)
        for future in self.waiters.pop(task.id, ()):
            if not future.done():
                future.set_result(task)
        if self.deps.has_dependents:
            dependents.settle(self, task)

    # -- the public surface: operations (asched.engine.control) and lifecycle --------------

    async def lookup(self, task_id: str) -> Task:
        """The live task if this process holds it, else the stored one."""
        return await control.lookup(self, task_id)

    async def list_tasks(
        self, state: TaskLifecycle | None, task_type: str | None, limit: int | None
    ) -> list[Task]:
        return await control.list_tasks(self, state, task_type, limit)

    async def wait(self, task_id: str, timeout_s: float | None) -> Task:
        """The task once it has ended; TaskTimeoutError after ``timeout_s``."""
        return await control.wait(self, task_id, timeout_s)

    async def cancel(self, task_id: str, reason: str) -> bool:
        return await control.cancel(self, task_id, reason)

    async def pause(self, task_id: str, reason: str = "paused by request") -> bool:
        return await control.pause(self, task_id, reason)

    async def resume(self, task_id: str, reason: str = "resumed by request") -> bool:
        return await control.resume(self, task_id, reason)

    async def set_priority(self, task_id: str, level: TaskPriority) -> bool:
        return await control.set_priority(self, task_id, level)

    async def start(self) -> None:
        """Open the store and executors, recover unfinished tasks, start the services."""
        await lifecycle.start(self)

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain within the grace period, hand back what did not finish, close the store."""
        await lifecycle.stop(self, grace_s)

    async def connect(self) -> None:
        """Open the store for operations on stored tasks, without running anything."""
        await self.store.open()

    async def disconnect(self) -> None:
        await self.store.close()

    def end_grace(self) -> int:
        return lifecycle.end_grace(self)
