"""Scheduler: the asynchronous public API.

::

    scheduler = Scheduler()                          # memory store
    scheduler = Scheduler(store="sqlite:///bot.db")  # durable, embedded

    @scheduler.task("content_creation", max_retries=3)
    async def create(channel_id: str, theme: str) -> dict: ...

    async with scheduler:
        tid = await scheduler.schedule_task("content_creation", {"channel_id": "c1"})
        result = await scheduler.wait_for(tid, timeout=30)
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

from asched._api_insight import InsightAPI
from asched._api_recurring import RecurringAPI
from asched._intake import SPEC_FIELDS, TaskIntake
from asched._parse import parse_lifecycle, parse_priority
from asched._schedule_runner import ScheduleRunner
from asched._shared import SharedStoreCoordinator
from asched._states import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PAUSED,
    QUEUED,
    RETRYING,
    RUNNING,
    SCHEDULED,
)
from asched.clock import Clock, LoopClock
from asched.config import SchedulerConfig
from asched.core.backoff import RetryPolicy
from asched.core.dependencies import find_cycle
from asched.core.ratelimit import RateLimit
from asched.engine import CANCELLED_BY_REQUEST
from asched.errors import (
    ConfigError,
    DependencyError,
    SchedulerStateError,
    TaskCancelledError,
    TaskFailedError,
    TaskNotFoundError,
    TaskTimeoutError,
    TaskValidationError,
)
from asched.events import Event
from asched.model import Task, TaskLifecycle, TaskPriority
from asched.policies import BreakerKey, Policies, TypePolicy
from asched.registry import DISTRIBUTED
from asched.stores import Store, open_store
from asched.stores.memory import MemoryStore
from asched.strategies.priority import FairShare, PriorityStrategy

F = TypeVar("F", bound=Callable[..., Any])
_ARMED = (QUEUED, SCHEDULED, RETRYING)


class Scheduler(RecurringAPI, InsightAPI):
    """Schedules, runs and tracks tasks on the running asyncio loop."""

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        config: SchedulerConfig | None = None,
        clock: Clock | None = None,
        priority_strategy: PriorityStrategy | None = None,
        fair_share: FairShare | bool = False,
        rng: random.Random | None = None,
        **settings: Any,
    ) -> None:
        config = config or SchedulerConfig()
        if isinstance(store, str):
            settings["store_url"] = store
        if settings:
            config = config.replace(**settings)
        backend = store if isinstance(store, Store) else open_store(config.store_url)
        fair = FairShare() if fair_share is True else (fair_share or None)
        super().__init__(config, backend, clock, Policies(rng), priority_strategy, fair)
        self._intake = TaskIntake(config, self._registry)
        self._schedules = ScheduleRunner(self, rng or random.Random())
        self._memory = backend if isinstance(backend, MemoryStore) else None
        if config.broker is not None:
            try:
                from asched.executors.distributed import DistributedExecutor
            except ImportError as exc:  # the amqp extra is not installed
                reason = f"needs the amqp extra (pip install 'asched[amqp]'): {exc}"
                raise ConfigError("broker", "amqp://...", reason) from None

            remote = DistributedExecutor(
                config.broker,
                config.broker_prefix,
                secret=config.broker_secret,
                report_grace_s=config.broker_report_grace_s,
            )
            remote.on_availability = lambda up, reason: self._set_executor_available(
                DISTRIBUTED, up, reason
            )
            for name in DISTRIBUTED:
                self._executors[name] = remote

    # -- registration --------------------------------------------------------------

    def task(
        self,
        name: str,
        *,
        executor: str | None = None,
        max_retries: int | None = None,
        backoff_factor: float | None = None,
        timeout: float | None = None,
        concurrency: int | None = None,
        retry: RetryPolicy | None = None,
        breaker: BreakerKey | None = None,
        rate_limit: RateLimit | None = None,
        rate_limit_per: str = "concurrency_key",
    ) -> Callable[[F], F]:
        """Register the decorated function as the handler for task type ``name``.

        ``retry`` sets the type's retry policy (its ``max_retries`` and
        ``backoff_factor`` become the defaults, a task may still override them);
        ``breaker`` names the circuit breaker guarding the type (or maps a task to
        one, e.g. ``lambda t: f"upload:{t.concurrency_key}"``); ``rate_limit``
        caps starts per ``concurrency_key`` (or per type, ``rate_limit_per="type"``).
        """

        def decorate(fn: F) -> F:
            self.register(
                name,
                fn,
                executor=executor,
                max_retries=max_retries,
                backoff_factor=backoff_factor,
                timeout=timeout,
                concurrency=concurrency,
                retry=retry,
                breaker=breaker,
                rate_limit=rate_limit,
                rate_limit_per=rate_limit_per,
            )
            return fn

        return decorate

    def register(
        self,
        name: str,
        handler: Callable[..., Any],
        *,
        retry: RetryPolicy | None = None,
        breaker: BreakerKey | None = None,
        rate_limit: RateLimit | None = None,
        rate_limit_per: str = "concurrency_key",
        **options: Any,
    ) -> None:
        if retry is not None:
            if not isinstance(retry, RetryPolicy):
                raise TaskValidationError("retry", retry, "expected a RetryPolicy")
            if options.get("max_retries") is None:
                options["max_retries"] = retry.max_retries
            if options.get("backoff_factor") is None:
                options["backoff_factor"] = retry.backoff_factor
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise TaskValidationError("rate_limit", rate_limit, "expected a RateLimit")
        if breaker is not None and not (isinstance(breaker, str) or callable(breaker)):
            raise TaskValidationError("breaker", breaker, "expected a name or a function")
        policy = TypePolicy(retry, breaker, rate_limit, rate_limit_per)
        if retry is not None or breaker is not None or rate_limit is not None:
            self._policies.set_type_policy(name, policy)
        definition = self._registry.register(name, handler, **options)
        if definition.concurrency is not None:
            self._limits.type_limits[name] = definition.concurrency
        if self._policies.is_gated(name):
            self._gated.add(name)

    def configure_breaker(self, name: str, **settings: Any) -> None:
        """Settings for the circuit breaker ``name``: ``failure_threshold``,
        ``failure_rate``, ``window_s``, ``min_calls``, ``recovery_s``,
        ``half_open_max_calls`` (see :class:`asched.core.breaker.CircuitBreakerCore`)."""
        self._policies.configure_breaker(name, **settings)

    def limit_key(self, concurrency_key: str, limit: int) -> None:
        """Allow ``limit`` tasks with this ``concurrency_key`` to run at once."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise TaskValidationError("limit", limit, "must be an integer >= 1")
        self._limits.key_limits[concurrency_key] = limit
        if self._running:
            self._request_dispatch()

    def subscribe(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``listener`` with every event; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- lifecycle -----------------------------------------------------------------

    async def __aenter__(self) -> Scheduler:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def store(self) -> Store:
        """The store this scheduler keeps its tasks in."""
        return self._store

    @property
    def task_types(self) -> list[str]:
        """The registered task type names, in registration order."""
        return self._registry.names()

    def use_store(self, store: str | Store) -> None:
        """Replace the store (a URL or a Store) before the scheduler first starts,
        e.g. to let a worker command line override the app's choice."""
        if self._running or self._closing:
            raise SchedulerStateError("use_store() is only allowed before start()")
        backend = store if isinstance(store, Store) else open_store(store)
        if isinstance(store, str):
            self.config = self.config.replace(store_url=store)
        self._store = backend
        self._memory = backend if isinstance(backend, MemoryStore) else None
        self._persists = not backend.shares_objects

    def set_max_concurrency(self, limit: int) -> None:
        """Change how many tasks may run at once; lowering it interrupts nothing."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise TaskValidationError("max_concurrency", limit, "must be an integer >= 1")
        self.config = self.config.replace(max_concurrency=limit)
        self._limits.total_limit = limit
        if self._running:
            self._request_dispatch()

    def share_store(self, lease_s: float | None = None) -> None:
        """Coordinate with other processes on the same durable store (before start):
        every attempt then starts under a lease; see :mod:`asched._shared`."""
        if self._running or self._closing:
            raise SchedulerStateError("share_store() must be called before start()")
        changes: dict[str, Any] = {"shared_store": True}
        if lease_s is not None:
            changes["lease_s"] = lease_s
        self.config = self.config.replace(**changes)

    def end_grace(self) -> int:
        """Cut short the grace period of a ``stop()`` in progress: cancel every running
        attempt now; each is handed back QUEUED, as at the end of the grace period.
        Returns how many attempts were cancelled (0 when no stop is in progress)."""
        if not self._closing:
            return 0
        cancelled = 0
        for task in self._active.values():
            handle = task._handle
            running = task.lifecycle is RUNNING and isinstance(handle, asyncio.Task)
            if running and not handle.done():
                handle.cancel()
                cancelled += 1
        return cancelled

    async def start(self) -> None:
        if self._running:
            raise SchedulerStateError("the scheduler is already running")
        remote = [d.name for d in self._registry.definitions.values() if d.executor in DISTRIBUTED]
        if remote and self.config.broker is None:
            reason = f"task type {remote[0]!r} runs on broker workers (executor='distributed')"
            raise ConfigError("broker", None, reason)
        loop = asyncio.get_running_loop()
        self._bind(loop, self._clock_override or LoopClock(loop))
        self._closing = False
        await self._store.open()
        for executor in self._executors.values():
            await executor.start()
        self._running = True
        shared = self.config.shared_store and self._store.durable
        self._shared = (
            SharedStoreCoordinator(self, self.config.lease_s, self.config.poll_interval_s)
            if shared
            else None
        )
        await self._recover()
        await self._schedules.start()
        if self._shared is not None:
            self._shared.start()

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop taking work, let running tasks finish within the grace period, then
        cancel them and hand them back (QUEUED).  Nothing is dropped."""
        if not self._running:
            return
        self._running = False
        self._closing = True
        await self._schedules.stop()
        shared = self._shared
        if shared is not None:
            await shared.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, None
        grace = self.config.grace_period_s if grace_s is None else grace_s
        running = [t._handle for t in self._active.values() if isinstance(t._handle, asyncio.Task)]
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            for handle in late:
                handle.cancel()
            if late:
                await asyncio.wait(late)
        now = self.clock.now()
        for task in list(self._active.values()):
            if task.lifecycle is SCHEDULED:
                self._disarm(task)
                # With a shared store this is not written: the row still says QUEUED
                # (SCHEDULED is never stored), and another process may own it by now.
                if shared is None:
                    self._move(task, QUEUED, now, "scheduler stopped before it was due")
            elif task.lifecycle is RETRYING:
                self._disarm(task)
        for executor in self._executors.values():
            await executor.shutdown()
        try:
            if self._flusher is not None:
                self._flusher.cancel()
                self._flusher = None
                await self._flush()
            if shared is not None:
                await shared.release_idle()
        finally:
            self._shared = None
            await self._store.close()

    async def _recover(self) -> None:
        """Re-arm what a previous run left unfinished in the store."""
        now = self.clock.now()
        self._active.clear()
        self._state_counts = [0] * len(self._state_counts)
        shared = self._shared is not None
        for task in await self._store.load_unfinished():
            if shared and task.lifecycle is RUNNING:
                continue  # its owner may be alive; the poller takes it if its lease expires
            self._active[task.id] = task
            self._state_counts[task.lifecycle] += 1
        for task in list(self._active.values()):
            state = task.lifecycle
            if shared and state is SCHEDULED:
                self._place(task, now)  # armed again, nothing written: the claim decides
                continue
            if state is RUNNING:
                self._move(task, QUEUED, now, "recovered: the previous run was interrupted")
            elif state is SCHEDULED:
                self._move(task, QUEUED, now, "recovered after restart")
            elif state is RETRYING:
                self._place(task, now)
                continue
            elif state is PAUSED:
                unmet = [d for d in task.dependencies if d in self._active]
                if unmet:
                    self._deps.hold(task.id, unmet)
                if unmet or task.user_paused:
                    continue
                self._move(task, QUEUED, now, "recovered after restart")
            self._arm(task, now)

    # -- scheduling ----------------------------------------------------------------

    async def schedule_task(
        self,
        task_type: str,
        task_data: Mapping[str, Any] | None = None,
        execution_time: datetime | None = None,
        priority: TaskPriority | int | str = TaskPriority.MEDIUM,
        **options: Any,
    ) -> str:
        """Accept one task; return its id.  See :data:`asched._intake.SPEC_FIELDS`.

        ``window=(not_before, not_after)`` lets the scheduler pick the time: the
        least busy slot by the forecast, or the best by ``slot_strategy`` (a
        :data:`asched.strategies.slots.SlotScorer`); the choice and its reason are
        recorded in the task's audit trail.
        """
        if not self._running:
            self._require_running()
        now = self.clock.now()
        slot = None
        if "window" in options or "slot_strategy" in options:
            slot = self._choose_slot(
                now,
                task_type,
                task_data,
                execution_time,
                options.pop("window", None),
                options.pop("slot_strategy", None),
                options,
            )
            execution_time = datetime.fromtimestamp(slot.at_s, UTC)
        task = self._intake.build(now, task_type, task_data, execution_time, priority, **options)
        if slot is not None:
            chosen = datetime.fromtimestamp(slot.at_s, UTC).isoformat()
            task.metadata.audit_trail.append(
                {"action": "slot_chosen", "at": chosen, "reason": slot.reason}
            )
        key = task.idempotency_key
        if key is not None:
            existing = await self._store.find_by_idempotency_key(key)
            if existing is not None:
                return existing
        unmet: list[str] = []
        failed: str | None = None
        if task.dependencies:
            unmet, failed = await self._check_dependencies(task, {task.id})
            if task.id in task.dependencies:
                raise DependencyError("dependencies", task.id, "a task cannot depend on itself")
        task.transition(QUEUED, now, None)
        if self._memory is not None:
            self._memory.insert_now((task,))
        else:
            try:
                await self._store.insert((task,))
            except TaskValidationError as exc:
                # A concurrent call with the same key won the race: return its task.
                if key is not None and exc.field == "idempotency_key":
                    winner = await self._store.find_by_idempotency_key(key)
                    if winner is not None:
                        return winner
                raise
        self._admit(task, now, unmet, failed)
        return task.id

    async def schedule_many(self, specs: Iterable[Mapping[str, Any]]) -> list[str]:
        """Accept a batch of task specs all-or-nothing; return their ids in order."""
        self._require_running()
        now = self.clock.now()
        build = self._intake.build
        tasks: list[Task] = []
        for index, spec in enumerate(specs):
            if not isinstance(spec, Mapping):
                raise TaskValidationError(f"specs[{index}]", spec, "expected a mapping")
            if not SPEC_FIELDS.issuperset(spec):
                name = sorted(set(spec) - SPEC_FIELDS)[0]
                raise TaskValidationError(f"specs[{index}].{name}", spec[name], "unknown field")
            if "task_type" not in spec:
                raise TaskValidationError(f"specs[{index}].task_type", None, "missing")
            tasks.append(build(now, **spec))
        ids = {t.id for t in tasks}
        if len(ids) != len(tasks):
            counts = Counter(t.id for t in tasks)
            twice = next(task_id for task_id, n in counts.items() if n > 1)
            raise TaskValidationError("task_id", twice, "used twice in one batch")
        for t in tasks:
            key = t.idempotency_key
            if key is not None and await self._store.find_by_idempotency_key(key) is not None:
                raise TaskValidationError("idempotency_key", key, "already used")
        plans: list[tuple[list[str], str | None]] | None = None
        if any(t.dependencies for t in tasks):
            plans = [await self._check_dependencies(t, ids) for t in tasks]
            cycle = find_cycle({t.id: [d for d in t.dependencies if d in ids] for t in tasks})
            if cycle:
                raise DependencyError("dependencies", " -> ".join(cycle), "dependency cycle")
        await self._submit(tasks, now, plans)
        return [t.id for t in tasks]

    async def _submit(
        self,
        tasks: list[Task],
        now: float,
        plans: list[tuple[list[str], str | None]] | None = None,
    ) -> None:
        """Store validated tasks (all or nothing), then hold or arm each."""
        for task in tasks:
            task.transition(QUEUED, now, None)
        if self._memory is not None:
            self._memory.insert_now(tasks)
        else:
            await self._store.insert(tasks)
        for index, task in enumerate(tasks):
            unmet, failed = ([], None) if plans is None else plans[index]
            self._admit(task, now, unmet, failed)

    async def _check_dependencies(
        self, task: Task, batch: set[str]
    ) -> tuple[list[str], str | None]:
        unmet: list[str] = []
        failed: str | None = None
        for dep_id in task.dependencies:
            if dep_id in batch or dep_id in self._active:
                unmet.append(dep_id)
                continue
            dep = await self._store.get(dep_id)
            if dep is None:
                raise DependencyError("dependencies", dep_id, "no task with this id")
            if dep.lifecycle is not COMPLETED:
                failed = failed or dep_id
        return unmet, failed

    # -- queries -------------------------------------------------------------------

    async def _lookup(self, task_id: str) -> Task:
        # A task that just settled is still in _dirty until the flusher hands it over.
        task = self._active.get(task_id) or self._dirty.get(task_id)
        if task is None:
            task = await self._store.get(task_id)
            if task is None:
                raise TaskNotFoundError(task_id)
        return task

    async def get_task(self, task_id: str) -> Task:
        """A snapshot of the task (later changes do not show in it)."""
        return (await self._lookup(task_id)).copy()

    async def get_task_status(self, task_id: str) -> TaskLifecycle:
        return (await self._lookup(task_id)).lifecycle

    async def list_tasks(
        self,
        status: TaskLifecycle | str | None = None,
        task_type: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        state = None if status is None else parse_lifecycle(status, "status")
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise TaskValidationError("limit", limit, "must be an integer >= 0")
        if self._dirty:  # hand over what this loop changed, so the list is current
            await self._flush()
        found = await self._store.list_tasks(state, task_type, limit)
        return [t.copy() for t in found]

    async def wait_for(self, task_id: str, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """The task's result once it completes; raises TaskFailedError or
        TaskCancelledError if it ends otherwise, TaskTimeoutError after ``timeout``."""
        task = await self._lookup(task_id)
        if not task.is_terminal:
            future: asyncio.Future[Task] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(task_id, []).append(future)
            try:
                task = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise TaskTimeoutError(task_id, timeout or 0.0, "wait") from None
            finally:
                waiting = self._waiters.get(task_id)
                if waiting and future in waiting:
                    waiting.remove(future)
        if task.lifecycle is COMPLETED:
            return task.result
        if task.lifecycle is FAILED:
            raise TaskFailedError(task_id, task.error)
        raise TaskCancelledError(task_id, _last_reason(task))

    # -- control -------------------------------------------------------------------

    async def cancel_task(self, task_id: str, reason: str = "cancelled by request") -> bool:
        """Cancel a task in any non-terminal state, RUNNING included.  False if it had
        already ended."""
        task = await self._lookup(task_id)
        if task.is_terminal:
            return False
        now = self.clock.now()
        if task.lifecycle is RUNNING:
            handle = task._handle
            if isinstance(handle, asyncio.Task) and not handle.done():
                self._cancel_reasons[task.id] = CANCELLED_BY_REQUEST
                handle.cancel()
        else:
            self._disarm(task)
            self._deps.forget(task.id)
        self._move(task, CANCELLED, now, reason)
        task.finished_s = now
        self._settle(task)
        return True

    async def pause_task(self, task_id: str) -> bool:
        """Hold a task that has not started.  False if it is running or has ended."""
        task = await self._lookup(task_id)
        if task.lifecycle is PAUSED:
            task.user_paused = True
            self._touch(task)
            return True
        if task.lifecycle not in _ARMED:
            return False
        self._disarm(task)
        task.user_paused = True
        self._move(task, PAUSED, self.clock.now(), "paused by request")
        return True

    async def resume_task(self, task_id: str) -> bool:
        """Release a task held by ``pause_task``; it still waits for unmet dependencies."""
        task = await self._lookup(task_id)
        if task.lifecycle is not PAUSED or not task.user_paused:
            return False
        task.user_paused = False
        if task.id in self._deps:
            self._touch(task)  # still held by its dependencies
        else:
            now = self.clock.now()
            self._move(task, QUEUED, now, "resumed by request")
            self._arm(task, now)
        return True

    async def set_priority(self, task_id: str, priority: TaskPriority | int | str) -> bool:
        """Change the priority of a task that has not started yet."""
        level = parse_priority(priority)
        task = await self._lookup(task_id)
        if task.is_terminal or task.lifecycle is RUNNING:
            return False
        task.priority = level
        self._ready.reprioritize(task.id, level)
        self._touch(task)
        return True


def _last_reason(task: Task) -> str | None:
    raw = task._history
    return raw[-1] if raw else None
