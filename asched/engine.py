"""The engine: one event loop owns every piece of mutable scheduler state.

Future tasks wait in the timer wheel, which arms a single clock timer for its
earliest deadline.  Due tasks move to the ready queue, keyed on (priority, due
time, sequence).  The dispatcher starts them while the concurrency limits have
room; a finished attempt frees its slot and settles the task: completed,
retried after a backoff, failed, or cancelled.  No locks: every method here
runs on the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson

from asched._shared import SharedStoreCoordinator
from asched._states import (
    CANCELLED,
    COMPLETED,
    CREATED,
    FAILED,
    PAUSED,
    QUEUED,
    RETRYING,
    RUNNING,
    SCHEDULED,
)
from asched.clock import Clock, TimerHandle
from asched.config import SchedulerConfig
from asched.core.dependencies import DependencyGraph
from asched.core.limits import ConcurrencyLimits
from asched.core.queue import TaskQueue
from asched.core.wheel import Timer, TimerWheel
from asched.core.windows import OutcomeWindow
from asched.errors import SchedulerStateError, TaskTimeoutError
from asched.events import EVENT_FOR_BREAKER_STATE, EVENT_FOR_STATE, Event, TaskQueued
from asched.executors import (
    AsyncExecutor,
    Executor,
    LocalExecutor,
    ProcessExecutor,
    ThreadExecutor,
)
from asched.model import Task, TaskLifecycle
from asched.policies import OUTCOME_ABANDONED, OUTCOME_FAILED, OUTCOME_SUCCEEDED, Gate, Policies
from asched.registry import Registry
from asched.stores import Store
from asched.strategies.priority import FairShare, PriorityStrategy

logger = logging.getLogger(__name__)

_EMPTY = b"{}"
CANCELLED_BY_REQUEST = "cancelled"  # a _cancel_reasons value: cancel_task
_FLUSH_BACKOFF_MIN_S = 0.05
_FLUSH_BACKOFF_MAX_S = 5.0
_TIMED_OUT = "timeout"
_LEASE_LOST = "lease lost"
_SHUTDOWN = "shutdown"


class Engine:
    """Arming, dispatching and settling tasks.  The public API lives in Scheduler."""

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
        self._policies = policies
        self._gated: set[str] = set()
        self._ranker = ranker
        self._fair = fair
        self._rerank_timer: TimerHandle | None = None
        self._store = store
        self._clock_override = clock
        self._registry = Registry()
        self._listeners: list[Callable[[Event], None]] = []
        self._active: dict[str, Task] = {}
        self._ready: TaskQueue[str, Task] = TaskQueue()
        self._wheel: TimerWheel[Task] = TimerWheel()
        self._limits: ConcurrencyLimits[str, Task] = ConcurrencyLimits(
            config.max_concurrency, config.key_concurrency
        )
        self._deps = DependencyGraph()
        self._waiters: dict[str, list[asyncio.Future[Task]]] = {}
        self._cancel_reasons: dict[str, str] = {}
        self._state_counts = [0] * (len(TaskLifecycle) + 1)
        self.outcomes = OutcomeWindow()
        # task type -> [completed attempts, their total seconds]
        self._durations: dict[str, list[float]] = {}
        self._executors: dict[str, Executor] = {
            "async": AsyncExecutor(),
            "local": LocalExecutor(),
            "thread": ThreadExecutor(config.thread_pool_size),
            "process": ProcessExecutor(config.process_pool_size),
        }
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._dispatch_pending = False
        self._closing = False
        self._running = False
        self._dirty: dict[str, Task] = {}
        self._flush_wanted: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._persists = not store.shares_objects
        self._on_settle: Callable[[Task], None] | None = None
        self._shared: SharedStoreCoordinator | None = None
        # executor name -> why its due tasks wait (the broker is unreachable)
        self._executor_holds: dict[str, Gate] = {}
        self.store_errors = 0

    # -- wiring ------------------------------------------------------------------

    def _bind(self, loop: asyncio.AbstractEventLoop, clock: Clock) -> None:
        self._loop = loop
        self.clock = clock
        self._wheel = TimerWheel(clock.now())
        if self._persists:
            self._flush_wanted = asyncio.Event()
            self._flusher = loop.create_task(self._flush_forever())

    def _move(self, task: Task, target: TaskLifecycle, now_s: float, reason: str | None) -> None:
        """The one way a task changes state: table-checked, recorded, counted, announced."""
        previous = task.lifecycle
        task.transition(target, now_s, reason)
        counts = self._state_counts
        counts[previous] -= 1
        counts[target] += 1
        if self._listeners:
            self._emit(
                EVENT_FOR_STATE[target](
                    task.id, task.type, task.priority, now_s, previous, target, reason
                )
            )
        # SCHEDULED only says "armed in this process": a store gains nothing from
        # it (a restart re-arms QUEUED tasks), so it rides along with the next write.
        if self._persists and target is not SCHEDULED:
            self._touch(task)

    def _touch(self, task: Task) -> None:
        """Mark a task's stored copy as stale; the flusher writes it soon."""
        if self._persists:
            self._dirty[task.id] = task
            assert self._flush_wanted is not None
            self._flush_wanted.set()

    def _emit(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("event listener %r failed on %r", listener, event)

    async def _flush_forever(self) -> None:
        """Write changed tasks, a batch per loop iteration; on a store error keep the
        batch, back off and try again, so no acknowledged change is dropped."""
        assert self._flush_wanted is not None
        backoff_s = _FLUSH_BACKOFF_MIN_S
        while True:
            await self._flush_wanted.wait()
            try:
                await self._flush()
            except Exception as exc:
                self.store_errors += 1
                logger.error(
                    "saving %d task(s) failed, retrying in %.2fs: %s",
                    len(self._dirty),
                    backoff_s,
                    exc,
                )
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, _FLUSH_BACKOFF_MAX_S)
                self._flush_wanted.set()
            else:
                backoff_s = _FLUSH_BACKOFF_MIN_S

    async def _flush(self) -> None:
        assert self._flush_wanted is not None
        self._flush_wanted.clear()
        if not self._dirty:
            return
        batch = list(self._dirty.values())
        self._dirty.clear()
        shared = self._shared
        try:
            refused = await self._store.save(batch, shared.fence_for(batch) if shared else None)
        except BaseException:
            for task in batch:
                self._dirty.setdefault(task.id, task)
            raise
        if shared is not None:
            for task in batch:  # a fenced write of these ended the lease in the store
                if task.is_terminal or task.lifecycle is QUEUED:
                    shared.done_with(task.id)
            if refused:
                shared.refused(refused)

    # -- arming ------------------------------------------------------------------

    def _admit(self, task: Task, now_s: float, unmet: list[str], failed: str | None) -> None:
        """A task just accepted into the store (QUEUED): hold it, cancel it, or arm it."""
        self._active[task.id] = task
        self._state_counts[QUEUED] += 1
        if self._listeners:
            self._emit(TaskQueued(task.id, task.type, task.priority, now_s, CREATED, QUEUED, None))
        if failed is None and not unmet:
            self._move(task, SCHEDULED, now_s, None)
            if task.due_s <= now_s and self._ranker is None and self._fair is None:
                # _place's common case inlined: due now, plain ordering.
                self._ready.push(task.id, task.priority, task.due_s, task)
                if not self._dispatch_pending:
                    self._dispatch_pending = True
                    self._loop.call_soon(self._dispatch)
            else:
                self._place(task, now_s)
        elif failed is not None:
            self._move(task, CANCELLED, now_s, f"dependency {failed} did not complete")
            self._settle(task)
        elif unmet:
            self._deps.hold(task.id, unmet)
            self._move(task, PAUSED, now_s, f"waiting for dependencies: {', '.join(unmet)}")

    def _arm(self, task: Task, now_s: float) -> None:
        """QUEUED → SCHEDULED: into the ready queue if due, else into the wheel."""
        self._move(task, SCHEDULED, now_s, None)
        self._place(task, now_s)

    def _push_ready(self, task: Task, now_s: float) -> None:
        if self._ranker is None and self._fair is None:
            self._ready.push(task.id, task.priority, task.due_s, task)
            return
        level = task.priority if self._ranker is None else self._ranker.rank(task, now_s)
        order = task.due_s if self._fair is None else self._fair.stamp(level, task.concurrency_key)
        self._ready.push(task.id, level, order, task)
        if self._ranker is not None and self._rerank_timer is None:
            every = self._ranker.rerank_every_s
            if every is not None:
                self._rerank_timer = self.clock.call_at(now_s + every, self._rerank)

    def _rerank(self) -> None:
        """Let a dynamic priority strategy re-rank every waiting task (ageing)."""
        self._rerank_timer = None
        ranker = self._ranker
        if ranker is None or not self._ready:
            return
        now = self.clock.now()
        for task in self._ready.unordered():
            self._ready.reprioritize(task.id, ranker.rank(task, now))
        if ranker.rerank_every_s is not None:
            self._rerank_timer = self.clock.call_at(now + ranker.rerank_every_s, self._rerank)

    def _place(self, task: Task, now_s: float) -> None:
        due = task.due_s
        if due <= now_s:
            self._push_ready(task, now_s)
            self._request_dispatch()
        else:
            task._handle = self._wheel.insert(due, task)
            if self._timer_at is None or due < self._timer_at:
                self._set_timer(due)

    def _disarm(self, task: Task) -> None:
        """Take a not-running task out of the wheel, the ready queue and the parking."""
        handle = task._handle
        if isinstance(handle, Timer):
            self._wheel.cancel(handle)
            task._handle = None
        self._ready.remove(task.id)
        limits = self._limits
        limits.unpark(task.id)
        woken = limits.forget(task.id)
        if woken:
            now = self.clock.now()
            for again in woken:
                self._push_ready(again, now)
            self._request_dispatch()

    def _set_timer(self, when_s: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when_s
        self._timer = self.clock.call_at(when_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self.clock.now()
        ready = self._ready
        simple = self._ranker is None and self._fair is None
        for task in self._wheel.advance(now):
            task._handle = None
            if simple:
                ready.push(task.id, task.priority, task.due_s, task)
            else:
                self._push_ready(task, now)
        following = self._wheel.next_deadline()
        if following is not None:
            self._set_timer(following)
        if ready:
            self._dispatch()

    # -- dispatching ---------------------------------------------------------------

    def _request_dispatch(self) -> None:
        if not self._dispatch_pending:
            self._dispatch_pending = True
            self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_pending = False
        if self._closing:
            return
        limits = self._limits
        ready = self._ready
        check_limits = bool(limits.type_limits)
        gated = self._gated
        fair = self._fair
        shared = self._shared
        now = self.clock.now()
        while limits.running < limits.total_limit:
            if fair is None:
                task = ready.pop()
                if task is None:
                    return
            else:
                popped = ready.pop_ordered()
                if popped is None:
                    return
                task, level, stamp = popped
                fair.dispatched(level, stamp)
            if check_limits or task.concurrency_key is not None:
                blocker = limits.blocker(task.type, task.concurrency_key)
                if blocker is not None:
                    for again in limits.park(blocker, task.id, task.priority, task.due_s, task):
                        self._push_ready(again, now)
                    continue
            if gated and task.type in gated:
                gate = self._gate(task, now)
                if gate is not None:
                    self._defer(task, gate, now)
                    continue
            if shared is None and not check_limits and task.concurrency_key is None:
                limits.running += 1  # _start's common case inlined
                self._begin(task, now)
            else:
                self._start(task, now)

    def _gate(self, task: Task, now_s: float) -> Gate | None:
        if self._executor_holds:
            hold = self._executor_holds.get(task.executor_type)
            if hold is not None:
                return hold
        return self._policies.gate(task, now_s) if self._policies.is_gated(task.type) else None

    def _set_executor_available(self, names: tuple[str, ...], available: bool, reason: str) -> None:
        """Executors ``names`` went down (their due tasks then wait SCHEDULED, parked,
        with ``reason``) or came back (the parked tasks go back to the ready queue)."""
        types = {d.name for d in self._registry.definitions.values() if d.executor in names}
        blocker_name = f"executor:{names[0]}"
        if not available:
            for name in names:
                self._executor_holds[name] = Gate(None, reason, blocker_name)
            self._gated.update(types)
            return
        if not any(name in self._executor_holds for name in names):
            return
        for name in names:
            self._executor_holds.pop(name, None)
        self._gated.difference_update(t for t in types if not self._policies.is_gated(t))
        now = self.clock.now()
        woken = self._limits.unpark_all(("breaker", blocker_name))
        for task in woken:
            task.wait_reason = None
            self._push_ready(task, now)
        if woken:
            self._request_dispatch()

    def _defer(self, task: Task, gate: Gate, now_s: float) -> None:
        """A due task must wait for a rate limit or a circuit; it spends no attempt."""
        task.wait_reason = gate.reason
        limits = self._limits
        if gate.wake_at_s is not None:
            task._handle = self._wheel.insert(gate.wake_at_s, task)
            if self._timer_at is None or gate.wake_at_s < self._timer_at:
                self._set_timer(gate.wake_at_s)
            woken = limits.forget(task.id)
        else:
            assert gate.breaker is not None
            blocker = ("breaker", gate.breaker)
            woken = limits.park(blocker, task.id, task.priority, task.due_s, task)
        for again in woken:
            self._push_ready(again, now_s)

    def _start(self, task: Task, now_s: float) -> None:
        limits = self._limits
        if task.concurrency_key is None and not limits.type_limits:
            limits.running += 1
        else:
            limits.acquire(task.type, task.concurrency_key, task.id)
        if self._shared is not None:
            self._shared.want(task)  # starts it once this process holds its lease
        else:
            self._begin(task, now_s)

    def _begin(self, task: Task, now_s: float) -> None:
        """Start an attempt of a task whose concurrency slot is already taken."""
        in_loop = task.executor_type == "async"
        executor = None if in_loop else self._executors.get(task.executor_type)
        self._move(task, RUNNING, now_s, None if executor is None else executor.start_reason)
        task.started_s = now_s
        task.wait_reason = None
        definition = self._registry.definitions.get(task.type)
        error = None
        if definition is None:
            error = f"no handler is registered for task type {task.type!r}"
        elif executor is None and not in_loop:
            error = f"this scheduler has no {task.executor_type!r} executor (no broker set?)"
        if error is not None or definition is None:
            self._finish_failure(task, error or "", now_s, None, retry=False)
            return
        raw = task.data_json
        kwargs: dict[str, Any] = {} if raw == _EMPTY else orjson.loads(raw)
        if executor is None:
            attempt = definition.handler(**kwargs)
        else:
            attempt = executor.run_task(task, definition.handler, kwargs)
        task._handle = self._loop.create_task(self._run(task, attempt))
        if task.timeout_s is not None and (executor is None or not executor.owns_timeouts):
            self.clock.call_at(now_s + task.timeout_s, lambda: self._time_out(task, now_s))

    # -- several processes on one store (see asched._shared) ---------------------------

    def _give_up_slot(self, task: Task, *, taken: bool) -> None:
        """A claim failed or was moot: free the slot; forget the task if another
        process holds it now."""
        self._release(task)
        if taken and self._active.pop(task.id, None) is not None:
            self._state_counts[task.lifecycle] -= 1

    def _lost(self, task_id: str) -> None:
        """Another process holds this task now: stop any attempt here, write nothing."""
        task = self._active.get(task_id)
        if task is None:
            return
        handle = task._handle
        if task.lifecycle is RUNNING and isinstance(handle, asyncio.Task) and not handle.done():
            self._cancel_reasons[task_id] = _LEASE_LOST
            handle.cancel()
        else:
            self._disarm(task)
            self._forget(task)

    def _forget(self, task: Task) -> None:
        if self._active.pop(task.id, None) is not None:
            self._state_counts[task.lifecycle] -= 1
        self._dirty.pop(task.id, None)

    def _adopt(self, task: Task, now_s: float) -> None:
        """A due task this process just leased from the store: run it here."""
        self._active[task.id] = task
        self._state_counts[task.lifecycle] += 1
        if task.lifecycle is RUNNING:  # its owner's lease ran out mid-attempt
            reason = "lease expired while running; its owner is presumed dead"
            if task.retries >= task.max_retries:
                task.error = reason
                task.finished_s = now_s
                self._move(task, FAILED, now_s, reason)
                self._settle(task)
                return
            task.retries += 1
            self._move(task, QUEUED, now_s, f"{reason}; attempt {task.retries} counted")
        if task.lifecycle is QUEUED:
            self._arm(task, now_s)
        else:
            self._place(task, now_s)

    async def _run(self, task: Task, attempt: Any) -> None:
        try:
            result = await attempt
        except asyncio.CancelledError:
            self._after_cancellation(task)
        except Exception as exc:
            if task.lifecycle is RUNNING:
                now = self.clock.now()
                self._report(task, OUTCOME_FAILED, now)
                self._finish_failure(task, _describe(exc), now, exc, retry=True)
            else:
                self._report(task, OUTCOME_ABANDONED, self.clock.now())
                self._release(task)
        else:
            if task.lifecycle is RUNNING:
                self._finish_success(task, result)
            else:
                self._report(task, OUTCOME_ABANDONED, self.clock.now())
                self._release(task)

    def _report(self, task: Task, outcome: str, now_s: float) -> None:
        """Feed a gated task's breaker; announce its changes; wake tasks waiting on it."""
        if task.type not in self._gated:
            return
        name, changes = self._policies.report(task, outcome, now_s)
        if name is None:
            return
        if self._listeners:
            for change in changes:
                event = EVENT_FOR_BREAKER_STATE[change.to_state]
                self._emit(
                    event(change.name, change.from_state, change.to_state, change.at, change.reason)
                )
        woken = self._limits.unpark_all(("breaker", name))
        for waiting in woken:
            self._push_ready(waiting, now_s)
        if woken:
            self._request_dispatch()

    def _time_out(self, task: Task, started_s: float) -> None:
        if task.lifecycle is RUNNING and task.started_s == started_s:
            deadline = started_s + (task.timeout_s or 0.0)
            if self.clock.now() < deadline:  # clock timers may run a little early
                self.clock.call_at(deadline, lambda: self._time_out(task, started_s))
                return
            handle = task._handle
            if isinstance(handle, asyncio.Task) and not handle.done():
                self._cancel_reasons[task.id] = _TIMED_OUT
                handle.cancel()

    def _after_cancellation(self, task: Task) -> None:
        reason = self._cancel_reasons.pop(task.id, _SHUTDOWN)
        now = self.clock.now()
        if reason == _LEASE_LOST:
            self._release(task)
            self._forget(task)
        elif task.lifecycle is not RUNNING:  # cancel_task already settled it
            self._report(task, OUTCOME_ABANDONED, now)
            self._release(task)
        elif reason == _TIMED_OUT:
            timeout = TaskTimeoutError(task.id, task.timeout_s or 0.0)
            self._report(task, OUTCOME_FAILED, now)
            self._finish_failure(
                task, f"timed out after {task.timeout_s:g}s", now, timeout, retry=True
            )
        else:
            self._report(task, OUTCOME_ABANDONED, now)
            self._release(task)
            task._handle = None
            self._move(task, QUEUED, now, "interrupted by shutdown; handed back")

    # -- settling ------------------------------------------------------------------

    def _release(self, task: Task) -> None:
        task._handle = None
        limits = self._limits
        if task.concurrency_key is None and not limits.type_limits:
            limits.running -= 1
        else:
            woken = limits.release(task.type, task.concurrency_key)
            if woken:
                now = self.clock.now()
                for parked in woken:
                    self._push_ready(parked, now)
        if self._ready:
            self._request_dispatch()

    def _finish_success(self, task: Task, result: Any) -> None:
        now = self.clock.now()
        if self._gated:
            self._report(task, OUTCOME_SUCCEEDED, now)
        limits = self._limits
        if task.concurrency_key is None and not limits.type_limits:
            # _release's common case inlined
            task._handle = None
            limits.running -= 1
            if self._ready and not self._dispatch_pending:
                self._dispatch_pending = True
                self._loop.call_soon(self._dispatch)
        else:
            self._release(task)
        task.result = result
        task.finished_s = now
        self._move(task, COMPLETED, now, None)
        took = now - (task.started_s or now)
        self.outcomes.record(now, True, took)
        stats = self._durations.get(task.type)
        if stats is None:
            self._durations[task.type] = [1, took]
        else:
            stats[0] += 1
            stats[1] += took
        # _settle's common case inlined: nobody waits and nothing depends on it.
        if self._waiters or self._deps.has_dependents or self._on_settle is not None:
            self._settle(task)
        else:
            del self._active[task.id]

    def _finish_failure(
        self, task: Task, error: str, now_s: float, exc: BaseException | None, *, retry: bool
    ) -> None:
        self._release(task)
        task.error = error
        self.outcomes.record(now_s, False, now_s - (task.started_s or now_s))
        delay = self._policies.retry_delay(task, exc) if retry else None
        if delay is not None:
            task.retries += 1
            task.due_s = now_s + delay
            reason = f"attempt {task.retries} failed: {error}; retrying in {delay:g}s"
            logger.info("task %s (%s): %s", task.id, task.type, reason)
            self._move(task, RETRYING, now_s, reason)
            self._place(task, now_s)
            return
        task.finished_s = now_s
        logger.warning("task %s (%s) failed: %s", task.id, task.type, error)
        self._move(task, FAILED, now_s, error)
        self._settle(task)

    def _settle(self, task: Task) -> None:
        """A task reached a terminal state: wake waiters, release or cancel dependents."""
        self._active.pop(task.id, None)
        if self._on_settle is not None:
            self._on_settle(task)
        if self._waiters:
            waiters = self._waiters.pop(task.id, None)
            if waiters:
                for future in waiters:
                    if not future.done():
                        future.set_result(task)
        if not self._deps.has_dependents:
            return
        if task.lifecycle is COMPLETED:
            freed = self._deps.completed(task.id)
            if freed:
                now = self.clock.now()
                for dep_id in freed:
                    dependent = self._active.get(dep_id)
                    if dependent is not None and not dependent.user_paused:
                        self._move(dependent, QUEUED, now, f"dependency {task.id} completed")
                        self._arm(dependent, now)
        else:
            doomed = self._deps.failed(task.id)
            if doomed:
                now = self.clock.now()
                for dep_id in doomed:
                    dependent = self._active.get(dep_id)
                    if dependent is not None and not dependent.is_terminal:
                        reason = f"dependency {task.id} ended {task.lifecycle.name}"
                        self._move(dependent, CANCELLED, now, reason)
                        self._settle(dependent)

    def _require_running(self) -> None:
        if not self._running:
            state = "shutting down" if self._closing else "not started"
            raise SchedulerStateError(
                f"the scheduler is {state}; use 'async with scheduler:' or await start()"
            )

    def mean_durations(self) -> dict[str, float]:
        """Mean seconds of a successful attempt, per task type, since start."""
        return {kind: total / n for kind, (n, total) in self._durations.items()}

    def state_count(self, state: TaskLifecycle) -> int:
        return self._state_counts[state]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
