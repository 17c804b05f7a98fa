"""SchedulerFacade: the Scheduler's API, synchronous, for code without an event loop.

It runs a :class:`Scheduler` on a background thread with its own loop (uvloop
where available), through an anyio blocking portal, and forwards each call to
it.  Producers often schedule task types that a worker elsewhere handles, so
unless told otherwise the facade accepts task types with no local handler; such
a task fails with a clear error only if it comes due here with no handler
registered.
"""

from __future__ import annotations

import atexit
import importlib.util
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from anyio.from_thread import start_blocking_portal

from asched.core.misfire import DEFAULT_MISFIRE_GRACE_S
from asched.middleware.audit import acting_as, call_site, called_from, current_actor
from asched.model import Task, TaskLifecycle, TaskPriority
from asched.scheduler import Scheduler
from asched.stores import Store

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])
_HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


class SchedulerFacade:
    """A synchronous front for a Scheduler running on its own thread."""

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        scheduler: Scheduler | None = None,
        **settings: Any,
    ) -> None:
        if scheduler is None:
            settings.setdefault("strict_task_types", False)
            scheduler = Scheduler(store, **settings)
        self.scheduler = scheduler
        options = {"use_uvloop": scheduler.config.use_uvloop and _HAS_UVLOOP}
        self._portal_cm = start_blocking_portal("asyncio", backend_options=options)
        self._portal = self._portal_cm.__enter__()
        self._closed = False
        try:
            self._portal.call(scheduler.start)
        except BaseException:
            self._portal_cm.__exit__(None, None, None)
            raise
        atexit.register(self.close)

    def _call(self, method: Callable[..., Awaitable[R]], *args: Any, **kwargs: Any) -> R:
        """Run a Scheduler coroutine method on the loop thread and wait for it; what it
        schedules is attributed to the facade's caller and actor (audit)."""
        site, actor = call_site(2), current_actor()

        async def run() -> R:
            with called_from(site), acting_as(actor):
                return await method(*args, **kwargs)

        return self._portal.call(run)

    # -- registration ----------------------------------------------------------------

    def task(self, name: str, **options: Any) -> Callable[[F], F]:
        def decorate(fn: F) -> F:
            self.register(name, fn, **options)
            return fn

        return decorate

    def register(self, name: str, handler: Callable[..., Any], **options: Any) -> None:
        async def register() -> None:
            self.scheduler.register(name, handler, **options)

        self._call(register)

    # -- tasks -----------------------------------------------------------------------

    def schedule_task(
        self,
        task_type: str,
        task_data: Mapping[str, Any] | None = None,
        execution_time: datetime | None = None,
        priority: TaskPriority | int | str = TaskPriority.MEDIUM,
        **options: Any,
    ) -> str:
        s = self.scheduler
        return self._call(
            s.schedule_task, task_type, task_data, execution_time, priority, **options
        )

    def schedule_many(self, specs: Iterable[Mapping[str, Any]]) -> list[str]:
        return self._call(self.scheduler.schedule_many, list(specs))

    def get_task_status(self, task_id: str) -> TaskLifecycle:
        return self._call(self.scheduler.get_task_status, task_id)

    def get_task(self, task_id: str) -> Task:
        return self._call(self.scheduler.get_task, task_id)

    def get_audit_trail(self, task_id: str) -> list[dict[str, Any]]:
        return self._call(self.scheduler.get_audit_trail, task_id)

    def list_tasks(
        self,
        status: TaskLifecycle | str | None = None,
        task_type: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        return self._call(self.scheduler.list_tasks, status, task_type, limit)

    def wait_for(self, task_id: str, timeout: float | None = None) -> Any:
        return self._call(self.scheduler.wait_for, task_id, timeout)

    def cancel_task(self, task_id: str, reason: str = "cancelled by request") -> bool:
        return self._call(self.scheduler.cancel_task, task_id, reason)

    def pause_task(self, task_id: str, reason: str = "paused by request") -> bool:
        return self._call(self.scheduler.pause_task, task_id, reason)

    def resume_task(self, task_id: str, reason: str = "resumed by request") -> bool:
        return self._call(self.scheduler.resume_task, task_id, reason)

    def set_priority(self, task_id: str, priority: TaskPriority | int | str) -> bool:
        return self._call(self.scheduler.set_priority, task_id, priority)

    # -- recurring schedules -----------------------------------------------------------

    def schedule_recurring(
        self,
        task_type: str,
        task_data: Mapping[str, Any] | None = None,
        *,
        cron: str | None = None,
        interval: float | timedelta | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        timezone: str | None = None,
        priority: TaskPriority | int | str = TaskPriority.MEDIUM,
        misfire_grace: float | timedelta | None = DEFAULT_MISFIRE_GRACE_S,
        coalesce: bool = True,
        max_instances: int = 1,
        jitter: float | timedelta | None = None,
        schedule_id: str | None = None,
        **task_options: Any,
    ) -> str:
        """See :meth:`Scheduler.schedule_recurring`."""
        return self._call(
            self.scheduler.schedule_recurring,
            task_type,
            task_data,
            cron=cron,
            interval=interval,
            start=start,
            end=end,
            timezone=timezone,
            priority=priority,
            misfire_grace=misfire_grace,
            coalesce=coalesce,
            max_instances=max_instances,
            jitter=jitter,
            schedule_id=schedule_id,
            **task_options,
        )

    def pause_schedule(self, schedule_id: str) -> bool:
        return self._call(self.scheduler.pause_schedule, schedule_id)

    def resume_schedule(self, schedule_id: str) -> bool:
        return self._call(self.scheduler.resume_schedule, schedule_id)

    def remove_schedule(self, schedule_id: str) -> bool:
        return self._call(self.scheduler.remove_schedule, schedule_id)

    def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        return self._call(self.scheduler.get_schedule, schedule_id)

    def list_schedules(self) -> list[dict[str, Any]]:
        return self._call(self.scheduler.list_schedules)

    # -- the cluster -------------------------------------------------------------------

    def list_workers(self) -> list[dict[str, Any]]:
        return self._call(self.scheduler.list_workers)

    # -- observability -----------------------------------------------------------------

    def get_system_load_metrics(self) -> dict[str, Any]:
        return self._call(self.scheduler.get_system_load_metrics)

    def get_task_execution_forecast(
        self,
        lookahead_hours: float = 24,
        *,
        task_type: str | None = None,
        bucket: str = "hour",
        upcoming_limit: int = 1000,
    ) -> dict[str, Any]:
        return self._call(
            self.scheduler.get_task_execution_forecast,
            lookahead_hours,
            task_type=task_type,
            bucket=bucket,
            upcoming_limit=upcoming_limit,
        )

    # -- shutdown --------------------------------------------------------------------

    def close(self, grace_s: float | None = None) -> None:
        """Drain the scheduler (see :meth:`Scheduler.stop`) and stop the thread."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        try:
            self._portal.call(self.scheduler.stop, grace_s)
        finally:
            self._portal_cm.__exit__(None, None, None)

    def __enter__(self) -> SchedulerFacade:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
