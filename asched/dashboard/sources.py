"""Where the dashboard's data comes from, and where its actions go.

:class:`LiveSource` wraps a running :class:`~asched.Scheduler` (inside a worker,
or a user's own app) and uses its public API.  :class:`StoreSource` (in
:mod:`asched.dashboard.store_source`) reads a store with no scheduler at all,
so opening a dashboard never runs a task.  Both read task lists and counts
through a :class:`~asched.dashboard.queries.TaskReader`, which pages and counts
on the store's indexes where it has them.
"""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asched.clock import wall_now
from asched.dashboard.queries import Counts, GenericReader, Page, TaskQuery, TaskReader
from asched.errors import AschedError
from asched.model import Task, TaskLifecycle, new_task_id
from asched.scheduler import Scheduler
from asched.stores.base import Store

#: States "retry now" accepts: a task that ended badly, or one waiting out a backoff.
RETRYABLE = frozenset({TaskLifecycle.FAILED, TaskLifecycle.CANCELLED, TaskLifecycle.RETRYING})
HOST = socket.gethostname()


class ActionRefusedError(AschedError):
    """The task or schedule is not in a state the action applies to (HTTP 409)."""

    def __init__(self, target: str, action: str, why: str) -> None:
        super().__init__(f"cannot {action} {target}: {why}")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked, as recorded in a task's history and audit trail."""

    name: str | None
    client: str | None

    def describe(self) -> str:
        who = f" by {self.name}" if self.name else ""
        where = f" from {self.client}" if self.client else ""
        return f"from the dashboard{who}{where}"

    def audit_entry(self, action: str, now_s: float, **extra: Any) -> dict[str, Any]:
        return {
            "at": datetime.fromtimestamp(now_s, UTC).isoformat(),
            "action": action,
            "via": "dashboard",
            "actor": self.name,
            "client": self.client,
            **extra,
        }


def reader_for(store: Store) -> TaskReader:
    from asched.stores.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        from asched.dashboard.sqlite_reader import SQLiteReader

        return SQLiteReader(store, store.path)
    return GenericReader(store)


class DashboardSource(ABC):
    """The dashboard's one view of a scheduler or a store."""

    #: How long counts are reused: the page asks for them several ways at once.
    counts_ttl_s = 1.0

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reader = reader_for(store)
        self._counts: tuple[float, Counts] | None = None

    def now(self) -> float:
        return wall_now()

    async def start(self) -> None:
        await self.reader.open()

    async def stop(self) -> None:
        await self.reader.close()

    async def page(self, query: TaskQuery) -> Page:
        return await self.reader.page(query)

    async def counts(self) -> Counts:
        now = self.now()
        cached = self._counts
        if cached is not None and now - cached[0] < self.counts_ttl_s:
            return cached[1]
        counts = await self.reader.counts(now)
        self._counts = (now, counts)
        return counts

    async def running(self, limit: int = 100) -> list[Task]:
        found = await self.reader.page(TaskQuery(TaskLifecycle.RUNNING, limit=limit))
        return found.tasks

    @abstractmethod
    async def metrics(self, counts: Counts | None = None) -> dict[str, Any]:
        """The load metrics; ``counts`` just read, if the source can use them."""

    @abstractmethod
    async def forecast(
        self, hours: float, bucket: str, task_type: str | None
    ) -> dict[str, Any]: ...

    @abstractmethod
    async def schedules(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def get_task(self, task_id: str) -> Task: ...

    @abstractmethod
    def breakers(self) -> dict[str, str]: ...

    @abstractmethod
    async def workers(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def cancel(self, task_id: str, actor: Actor) -> dict[str, Any]: ...

    @abstractmethod
    async def pause(self, task_id: str, actor: Actor) -> dict[str, Any]: ...

    @abstractmethod
    async def resume(self, task_id: str, actor: Actor) -> dict[str, Any]: ...

    @abstractmethod
    async def retry_now(self, task_id: str, actor: Actor) -> dict[str, Any]: ...

    @abstractmethod
    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, actor: Actor
    ) -> dict[str, Any]: ...


class LiveSource(DashboardSource):
    """A scheduler running in this process; its owner starts and stops it."""

    def __init__(self, scheduler: Scheduler) -> None:
        super().__init__(scheduler.store)
        self.scheduler = scheduler

    async def start(self) -> None:
        pass  # the reader opens on first use: the app may start before the scheduler

    async def metrics(self, counts: Counts | None = None) -> dict[str, Any]:
        return await self.scheduler.get_system_load_metrics()

    async def forecast(self, hours: float, bucket: str, task_type: str | None) -> dict[str, Any]:
        return await self.scheduler.get_task_execution_forecast(
            hours, task_type=task_type, bucket=bucket, upcoming_limit=50
        )

    async def schedules(self) -> list[dict[str, Any]]:
        return await self.scheduler.list_schedules()

    async def get_task(self, task_id: str) -> Task:
        return await self.scheduler.get_task(task_id)

    def breakers(self) -> dict[str, str]:
        return self.scheduler.breaker_states()

    async def workers(self) -> list[dict[str, Any]]:
        s = self.scheduler
        me = {
            "id": f"{HOST}:{os.getpid()}",
            "host": HOST,
            "pid": os.getpid(),
            "this_process": True,
            "started": s.running,
            "running_tasks": s.state_count(TaskLifecycle.RUNNING),
            "max_concurrency": s.config.max_concurrency,
            "task_types": s.task_types,
        }
        return [me, *await self.reader.lease_owners(self.now())]

    async def cancel(self, task_id: str, actor: Actor) -> dict[str, Any]:
        if not await self.scheduler.cancel_task(task_id, reason=f"cancelled {actor.describe()}"):
            raise ActionRefusedError(task_id, "cancel", "it has already ended")
        return {"cancelled": task_id}

    async def pause(self, task_id: str, actor: Actor) -> dict[str, Any]:
        if not await self.scheduler.pause_task(task_id, reason=f"paused {actor.describe()}"):
            raise ActionRefusedError(task_id, "pause", "it is running or has ended")
        return {"paused": task_id}

    async def resume(self, task_id: str, actor: Actor) -> dict[str, Any]:
        if not await self.scheduler.resume_task(task_id, reason=f"resumed {actor.describe()}"):
            raise ActionRefusedError(task_id, "resume", "it was not paused by request")
        return {"resumed": task_id}

    async def retry_now(self, task_id: str, actor: Actor) -> dict[str, Any]:
        """Run a copy of the task now; a task waiting out a backoff is cancelled
        first, with the copy's id in the reason."""
        task = await self.scheduler.get_task(task_id)
        if task.lifecycle not in RETRYABLE:
            raise ActionRefusedError(task_id, "retry", f"it is {task.lifecycle.name}")
        copy_id = new_task_id()
        if task.lifecycle is TaskLifecycle.RETRYING:
            reason = f"retried now {actor.describe()} as task {copy_id}"
            if not await self.scheduler.cancel_task(task_id, reason=reason):
                raise ActionRefusedError(task_id, "retry", "it ended meanwhile")
        await self.scheduler.schedule_task(task_id=copy_id, **retry_options(task, actor))
        return {"retried": task_id, "new_task": copy_id}

    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, actor: Actor
    ) -> dict[str, Any]:
        call = self.scheduler.pause_schedule if paused else self.scheduler.resume_schedule
        if not await call(schedule_id):
            state = "paused" if paused else "running"
            raise ActionRefusedError(schedule_id, "change", f"the schedule is already {state}")
        return {"schedule": schedule_id, "paused": paused}


def retry_options(task: Task, actor: Actor) -> dict[str, Any]:
    """``schedule_task`` arguments for a fresh copy of ``task``, due now, tagged
    with the task it retries."""
    tags = [t for t in task.metadata.tags if not t.startswith("retry_of:")]
    return {
        "task_type": task.type,
        "task_data": task.data,
        "priority": task.priority,
        "executor": task.executor_type,
        "max_retries": task.max_retries,
        "backoff_factor": task.backoff_factor,
        "timeout": task.timeout_s,
        "concurrency_key": task.concurrency_key,
        "tags": [*tags, f"retry_of:{task.id}"],
        "created_by": f"dashboard{':' + actor.name if actor.name else ''}",
    }
