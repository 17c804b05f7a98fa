"""Operator commands on a store, without a scheduler: ``status``, ``list``,
``schedules``, ``forecast`` read it; ``cancel`` changes one task under a lease.
Nothing is scheduled or executed."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson

from asched.cli.format import plural, printable, table, when
from asched.clock import wall_now
from asched.engine.recurring import Schedule
from asched.errors import (
    AschedError,
    TaskHeldElsewhereError,
    TaskNotFoundError,
    TaskValidationError,
)
from asched.middleware.audit import OS_USER, acting_as
from asched.model import Task, TaskLifecycle
from asched.observability.forecast import BUCKETS_S, build_forecast, render_timeline
from asched.scheduler import Scheduler
from asched.stores import Store, open_store
from asched.stores.memory import MemoryStore

#: The most rows ``asched list --limit`` shows.
MAX_LIST_LIMIT = 1_000_000


class OpsError(AschedError):
    """An operator command cannot run; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def existing_store(url: str, *, read_only: bool = True) -> Store:
    """The store ``url`` names, checked to exist: a read never creates a database,
    and opens it read-only (nothing migrated or switched; a read-only file works)."""
    try:
        store = open_store(url, read_only=read_only)
    except AschedError as exc:
        raise OpsError(str(exc), code=2) from None
    if isinstance(store, MemoryStore):
        raise OpsError("memory:// keeps nothing between processes; give a sqlite:/// URL", 2)
    path = getattr(store, "path", None)
    if isinstance(path, str) and not os.path.isfile(path):
        raise OpsError(f"no database at {os.path.abspath(path)} (check --store)")
    return store


@asynccontextmanager
async def reading(store: Store) -> AsyncIterator[Store]:
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def cancel_task(store: Store, task_id: str, reason: str) -> None:
    """Cancel a stored task through a scheduler that runs nothing: the change goes
    through the engine's one door, under a lease, or -- for a task a worker holds --
    as a request that worker carries out (see ``Scheduler.cancel_task``)."""
    scheduler = Scheduler(store)
    await scheduler.connect()
    try:
        with acting_as(f"{OS_USER} (asched cancel)"):
            cancelled = await scheduler.cancel_task(task_id, reason)
        if not cancelled:
            task = await scheduler.get_task(task_id)
            raise OpsError(f"task {task_id} has already ended {task.lifecycle.name}")
    except TaskNotFoundError:
        raise OpsError(f"no task with id {task_id!r}") from None
    except TaskHeldElsewhereError as exc:
        raise OpsError(f"{exc}; try again") from None
    finally:
        await scheduler.disconnect()
    print(f"cancelled {task_id}")


async def show_audit(store: Store, task_id: str, as_json: bool) -> None:
    """Print a task's audit trail, oldest first."""
    scheduler = Scheduler(store)
    await scheduler.connect()
    try:
        trail = await scheduler.get_audit_trail(task_id)
    except TaskNotFoundError:
        raise OpsError(f"no task with id {task_id!r}") from None
    finally:
        await scheduler.disconnect()
    for entry in trail:
        if as_json:
            print(orjson.dumps(entry, default=str).decode())
            continue
        details = ", ".join(f"{k}={v}" for k, v in entry.items() if k not in ("at", "action"))
        print(f"{entry.get('at', '')}  {entry['action']:<12} {details}")


async def show_status(store: Store, task_id: str) -> None:
    async with reading(store):
        task = await store.get(task_id)
    if task is None:
        where = getattr(store, "path", type(store).__name__)
        raise OpsError(f"no task with id {task_id!r} in {where}")
    print(status_block(task))


def status_block(task: Task) -> str:
    fields: list[tuple[str, object]] = [
        ("task", task.id),
        ("type", task.type),
        ("state", task.lifecycle.name),
        ("priority", task.priority.name),
        ("due", when(task.due_s)),
        ("created", when(task.created_s)),
        ("started", when(task.started_s)),
        ("finished", when(task.finished_s)),
        ("retries", f"{task.retries} (max {task.max_retries})"),
        ("executor", task.executor_type),
        ("data", task.data_json.decode()),
        ("error", task.error or "-"),
    ]
    if task.result is not None:
        fields.append(("result", orjson.dumps(task.result, default=str).decode()))
    for name, value in (
        ("depends on", ", ".join(task.dependencies)),
        ("key", task.concurrency_key),
        ("waiting", task.wait_reason),
    ):
        if value:
            fields.append((name, value))
    lines = [f"{name:<11} {printable(str(value))}" for name, value in fields]
    rows = [(when(t.at), t.from_state.name, t.to_state.name, t.reason) for t in task.history]
    lines += ["", "history (UTC)", table(("time", "from", "to", "reason"), rows)]
    return "\n".join(lines)


async def list_tasks(store: Store, status: str | None, task_type: str | None, limit: int) -> None:
    if limit > MAX_LIST_LIMIT:
        raise OpsError(f"--limit must be at most {MAX_LIST_LIMIT:,}, not {limit}", code=2)
    state = None if status is None else TaskLifecycle[status]
    async with reading(store):
        tasks = await store.list_tasks(state, task_type, limit + 1)
    if not tasks:
        print("no tasks match")
        return
    shown = tasks[:limit]
    rows = [
        (t.id, t.type, t.priority.name, t.lifecycle.name, when(t.due_s), t.retries) for t in shown
    ]
    print(table(("id", "type", "priority", "state", "due (UTC)", "retries"), rows))
    if len(tasks) > limit:
        print(f"showing the first {limit} by due time; more match (raise --limit)")
    else:
        print(plural(len(shown), "task"))


async def list_schedules(store: Store) -> None:
    async with reading(store):
        schedules = await _load_schedules(store)
    if not schedules:
        print("no recurring schedules")
        return
    schedules.sort(key=lambda s: (s.next_fire_s is None, s.next_fire_s or 0.0, s.id))
    rows = [
        (
            s.id,
            s.task_type,
            describe_trigger(s),
            s.state,
            when(s.next_fire_s),
            when(s.last_fire_s),
            s.fired,
            _skipped(s),
        )
        for s in schedules
    ]
    headers = ("id", "type", "trigger", "state", "next fire", "last fire", "fired", "skipped")
    print(table(headers, rows))
    print("times in UTC")


def describe_trigger(schedule: Schedule) -> str:
    spec = schedule.trigger.to_dict()
    kind = spec.get("kind")
    if kind == "cron":
        return f"cron {spec.get('expression')} ({spec.get('timezone')})"
    if kind == "interval":
        return f"every {spec.get('seconds'):g}s"
    at = spec.get("at")
    if kind == "date" and isinstance(at, int | float):
        return f"once at {when(at)}"
    return str(kind)


def _skipped(schedule: Schedule) -> str:
    parts = [
        f"{n} {label}"
        for n, label in (
            (schedule.skipped_late, "late"),
            (schedule.skipped_coalesced, "coalesced"),
            (schedule.skipped_max_instances, "max_instances"),
        )
        if n
    ]
    return ", ".join(parts)


async def _load_schedules(store: Store) -> list[Schedule]:
    schedules = []
    for record in await store.load_schedules():
        try:
            schedules.append(Schedule.from_record(record))
        except TaskValidationError as exc:
            what = printable(f"skipping unreadable schedule {record.get('id')!r}: {exc}")
            print(what, file=sys.stderr)
    return schedules


async def show_forecast(store: Store, hours: float, bucket: str, task_type: str | None) -> None:
    async with reading(store):
        tasks = await store.load_unfinished()
        schedules = await _load_schedules(store)
    forecast = build_forecast(
        wall_now(),
        hours * 3600,
        BUCKETS_S[bucket],
        tasks,
        schedules,
        {},  # mean durations are only known to a running worker
        task_type=task_type,
        upcoming_limit=10,
    )
    scope = "" if task_type is None else f" of type {task_type}"
    print(f"{plural(forecast['total'], 'run')}{scope} expected in the next {hours:g}h (UTC)")
    print(render_timeline(forecast))
    upcoming = forecast["upcoming"]
    if upcoming:
        print()
        print("next runs")
        rows = [(u["time"], u["id"], u["type"], u["priority"], u["source"]) for u in upcoming]
        print(table(("time", "id", "type", "priority", "source"), rows))
