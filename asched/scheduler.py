"""Scheduler: the asynchronous public API.

::

    scheduler = Scheduler()                          # memory store
    scheduler = Scheduler(store="sqlite:///bot.db")  # durable, embedded

    @scheduler.task("content_creation", max_retries=3)
    async def create(channel_id: str, theme: str) -> dict: ...

    async with scheduler:
        tid = await scheduler.schedule_task("content_creation", {"channel_id": "c1"})
        result = await scheduler.wait_for(tid, timeout=30)

A Scheduler validates what it is given and holds an :class:`~asched.engine.loop.Engine`
that does the work (built by :mod:`asched.api.assembly`); recurring schedules run
in the engine's schedule runner (their methods: :mod:`asched.api.recurring`), and
the load metrics come from an event subscriber (:mod:`asched.api.observing`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import EllipsisType, MappingProxyType, TracebackType
from typing import Any, TypeVar

from asched.api.assembly import assemble, check_startable, use_broker, use_middleware
from asched.api.observing import ObservingMethods
from asched.api.recurring import RecurringMethods
from asched.api.registration import register_type
from asched.config import SchedulerConfig
from asched.core.backoff import RetryPolicy
from asched.core.breaker import BreakerSettings
from asched.core.checks import require_int
from asched.core.ratelimit import RateLimit
from asched.engine import cluster
from asched.engine.policies import BreakerKey
from asched.engine.registry import TaskDefinition
from asched.errors import (
    SchedulerCrashedError,
    SchedulerStateError,
    TaskCancelledError,
    TaskFailedError,
    TaskValidationError,
)
from asched.middleware.audit import audit_trail
from asched.model import Task, TaskLifecycle, TaskPriority
from asched.model.states import COMPLETED, FAILED
from asched.model.validation import parse_lifecycle, parse_priority
from asched.observability import insight
from asched.observability.alerting import AlertManager
from asched.stores import Store, open_store
from asched.strategies.priority import FairShare, PriorityStrategy

F = TypeVar("F", bound=Callable[..., Any])


class Scheduler(RecurringMethods, ObservingMethods):
    """Schedules, runs and tracks tasks on the running asyncio loop."""

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        config: SchedulerConfig | None = None,
        clock: Any = None,
        priority_strategy: PriorityStrategy | None = None,
        fair_share: FairShare | bool = False,
        rng: random.Random | None = None,
        audit: bool = True,
        audit_file: str | None = None,
        middleware: Iterable[Any] = (),
        **settings: Any,
    ) -> None:
        config = config or SchedulerConfig()
        if isinstance(store, str):
            settings["store_url"] = store
        if settings:
            config = config.replace(**settings)
        self.config = config
        backend = store if isinstance(store, Store) else open_store(config.store_url)
        parts = assemble(config, backend, clock, rng, priority_strategy, fair_share)
        self._engine = parts.engine
        self._policies = parts.policies
        self._intake = parts.intake
        self._admission = parts.admission
        self._schedules = parts.schedules
        self._metrics = parts.metrics
        self._alerts: AlertManager | None = None
        use_middleware(self._engine, audit, audit_file, middleware)
        use_broker(self._engine, config)

    # -- registration --------------------------------------------------------------

    def task(self, name: str, **options: Any) -> Callable[[F], F]:
        """Register the decorated function as the handler for task type ``name``
        (the options are :meth:`register`'s)."""

        def decorate(fn: F) -> F:
            self.register(name, fn, **options)
            return fn

        return decorate

    def register(
        self,
        name: str,
        handler: Callable[..., Any],
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
        result_ttl_s: float | EllipsisType | None = ...,
    ) -> None:
        """Register ``handler`` for task type ``name``.

        ``result_ttl_s`` keeps this type's finished tasks that long (None: forever)
        instead of the configured ``result_ttl_s``.

        ``retry`` sets the type's retry policy (its ``max_retries`` and
        ``backoff_factor`` become the defaults, a task may still override them);
        ``breaker`` names the circuit breaker guarding the type (or maps a task to
        one, e.g. ``lambda t: f"upload:{t.concurrency_key}"``); ``rate_limit``
        caps starts per ``concurrency_key`` (or per type, ``rate_limit_per="type"``).
        """
        register_type(
            self._engine,
            self._policies,
            name,
            handler,
            executor=executor,
            max_retries=max_retries,
            backoff_factor=backoff_factor,
            timeout=timeout,
            concurrency=concurrency,
            retry=retry,
            breaker=breaker,
            rate_limit=rate_limit,
            rate_limit_per=rate_limit_per,
            result_ttl_s=result_ttl_s,
        )

    def configure_breaker(
        self, name: str, settings: BreakerSettings | None = None, **changes: Any
    ) -> None:
        """Settings for the circuit breaker ``name``: a :class:`BreakerSettings`, or its
        fields by keyword (``failure_threshold=3, recovery_s=60``)."""
        self._policies.configure_breaker(name, settings, **changes)

    def limit_key(self, concurrency_key: str, limit: int) -> None:
        """Allow ``limit`` tasks with this ``concurrency_key`` to run at once."""
        self._engine.set_key_limit(concurrency_key, require_int("limit", limit, minimum=1))

    def set_max_concurrency(self, limit: int) -> None:
        """Change how many tasks may run at once; lowering it interrupts nothing."""
        limit = require_int("max_concurrency", limit, minimum=1)
        self.config = self.config.replace(max_concurrency=limit)
        self._engine.set_max_concurrency(limit)

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
        return self._engine.is_running

    async def wait_crashed(self) -> SchedulerCrashedError:
        """Return the error once one of the scheduler's own background tasks has died
        (the scheduler then takes no more work; see :mod:`asched.engine.watchdog`).
        Waits for as long as the scheduler runs well; a SchedulerStateError once it
        has stopped."""
        crashed = self._engine.crashed
        if crashed is None:
            raise SchedulerStateError("the scheduler is not started")
        try:
            return await asyncio.shield(crashed)
        except asyncio.CancelledError:
            if crashed.cancelled():  # stop() ends the wait
                raise SchedulerStateError("the scheduler stopped") from None
            raise

    @property
    def store(self) -> Store:
        """The store this scheduler keeps its tasks in."""
        return self._engine.store

    @property
    def clock(self) -> Any:
        return self._engine.clock

    @property
    def store_errors(self) -> int:
        """How many times writing tasks back to the store failed (and was retried)."""
        return self._engine.store_errors

    @property
    def handlers(self) -> Mapping[str, TaskDefinition]:
        """The registered task types and their handlers and options (read-only)."""
        return MappingProxyType(self._engine.registry.definitions)

    @property
    def task_types(self) -> list[str]:
        """The registered task type names, in registration order."""
        return self._engine.registry.names()

    def state_count(self, state: TaskLifecycle) -> int:
        """How many tasks this process holds in ``state``."""
        return self._engine.state_count(state)

    def use_store(self, store: str | Store) -> None:
        """Replace the store (a URL or a Store) before the scheduler first starts,
        e.g. to let a worker command line override the app's choice."""
        if self.running or self._engine.is_closing:
            raise SchedulerStateError("use_store() is only allowed before start()")
        self._engine.use_store(store if isinstance(store, Store) else open_store(store))
        if isinstance(store, str):
            self._reconfigure(store_url=store)

    def share_store(self, lease_s: float | None = None) -> None:
        """Coordinate with other processes on the same durable store (before start):
        every attempt then starts under a lease; see :mod:`asched.engine.shared`."""
        if self.running or self._engine.is_closing:
            raise SchedulerStateError("share_store() must be called before start()")
        changes: dict[str, Any] = {"shared_store": True}
        if lease_s is not None:
            changes["lease_s"] = lease_s
        self._reconfigure(**changes)

    def _reconfigure(self, **changes: Any) -> None:
        self.config = self.config.replace(**changes)
        self._engine.config = self.config

    def end_grace(self) -> int:
        """Cut short the grace period of a ``stop()`` in progress: cancel every running
        attempt now; each is handed back QUEUED, as at the end of the grace period.
        Returns how many attempts were cancelled (0 when no stop is in progress)."""
        return self._engine.end_grace()

    async def start(self) -> None:
        check_startable(self._engine, self.config)
        await self._engine.start()

    async def connect(self) -> None:
        """Open the store for operator calls on stored tasks (``get_task``,
        ``list_tasks``, ``cancel_task``) without starting: nothing is armed or run.
        Close with :meth:`disconnect`."""
        await self._engine.connect()

    async def disconnect(self) -> None:
        await self._engine.disconnect()

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop taking work, let running tasks finish within the grace period, then
        cancel them and hand them back (QUEUED).  Nothing is dropped."""
        await self._engine.stop(grace_s)

    # -- scheduling ----------------------------------------------------------------

    async def schedule_task(
        self,
        task_type: str,
        task_data: Mapping[str, Any] | None = None,
        execution_time: datetime | None = None,
        priority: TaskPriority | int | str = TaskPriority.MEDIUM,
        **options: Any,
    ) -> str:
        """Accept one task; return its id.  See :data:`asched.engine.intake.SPEC_FIELDS`.

        ``window=(not_before, not_after)`` lets the scheduler pick the time: the
        least busy slot by the forecast, or the best by ``slot_strategy`` (a
        :data:`asched.strategies.slots.SlotScorer`); the choice and its reason are
        recorded in the task's audit trail."""
        if not self._engine.is_running:
            self._engine.require_running()
        if options and ("window" in options or "slot_strategy" in options):
            if execution_time is not None or "delay" in options:
                window = options.get("window")
                raise TaskValidationError("window", window, "give a window or a time, not both")
            chosen, audit = insight.choose_time(
                self._engine,
                self._intake,
                self._schedules.schedules.values(),
                task_type,
                task_data,
                options.pop("window", None),
                options.pop("slot_strategy", None),
            )
            accepted = self._admission.schedule(
                task_type, task_data, chosen, priority, options, audit=audit
            )
        else:
            accepted = self._admission.schedule(
                task_type, task_data, execution_time, priority, options
            )
        if isinstance(accepted, str):  # admitted already: no await, no coroutine
            return accepted
        if isinstance(accepted, tuple):  # durable: its insert is awaited from this coroutine
            task, stored = accepted
            del accepted  # not held while awaiting: thousands may be in flight
            try:
                await stored
            except BaseException:
                self._engine.stored(task, False)
                raise
            return self._engine.stored(task, True)
        return await accepted

    async def schedule_many(self, specs: Iterable[Mapping[str, Any]]) -> list[str]:
        """Accept a batch of task specs all-or-nothing; return their ids in order."""
        self._engine.require_running()
        return await self._admission.schedule_many(specs)

    # -- queries -------------------------------------------------------------------

    async def get_task(self, task_id: str) -> Task:
        """A snapshot of the task (later changes do not show in it)."""
        return (await self._engine.lookup(task_id)).copy()

    async def get_task_status(self, task_id: str) -> TaskLifecycle:
        return (await self._engine.lookup(task_id)).lifecycle

    async def list_tasks(
        self,
        status: TaskLifecycle | str | None = None,
        task_type: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        state = None if status is None else parse_lifecycle(status, "status")
        if limit is not None:
            require_int("limit", limit, minimum=0)
        found = await self._engine.list_tasks(state, task_type, limit)
        return [t.copy() for t in found]

    async def get_audit_trail(self, task_id: str) -> list[dict[str, Any]]:
        """Who created the task and from where, every state change with its reason,
        and every request (cancel, pause, ...) with who asked, oldest first."""
        return audit_trail(await self._engine.lookup(task_id))

    async def wait_for(self, task_id: str, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """The task's result once it completes; raises TaskFailedError or
        TaskCancelledError if it ends otherwise, TaskTimeoutError after ``timeout``."""
        task = await self._engine.wait(task_id, timeout)
        if task.lifecycle is COMPLETED:
            return task.result
        if task.lifecycle is FAILED:
            raise TaskFailedError(task_id, task.error)
        history = task._history
        raise TaskCancelledError(task_id, history[-1] if history else None)

    # -- control -------------------------------------------------------------------

    async def cancel_task(self, task_id: str, reason: str = "cancelled by request") -> bool:
        """Cancel a task in any non-terminal state, RUNNING included.  False if it had
        already ended.  A task this process does not hold is cancelled in the store
        under a lease; one another worker leases (running it, say) is cancelled by
        that worker on request, within about a second."""
        return await self._engine.cancel(task_id, reason)

    async def pause_task(self, task_id: str, reason: str = "paused by request") -> bool:
        """Hold a task that has not started (one another worker holds is paused there,
        on request).  False if it is running or has ended.
        ``reason`` is recorded in the task's history."""
        return await self._engine.pause(task_id, reason)

    async def resume_task(self, task_id: str, reason: str = "resumed by request") -> bool:
        """Release a task held by ``pause_task``; it still waits for unmet dependencies.
        ``reason`` is recorded in the task's history."""
        return await self._engine.resume(task_id, reason)

    async def set_priority(self, task_id: str, priority: TaskPriority | int | str) -> bool:
        """Change the priority of a task that has not started yet."""
        return await self._engine.set_priority(task_id, parse_priority(priority))

    # -- the cluster ---------------------------------------------------------------

    async def list_workers(self) -> list[dict[str, Any]]:
        """Every worker registered in the store (id, host, pid, started,
        last_heartbeat, running, version, status ``live`` or ``lost``), oldest first.
        Works on a connected scheduler too."""
        return await cluster.list_workers(self._engine)
