"""Operator commands on a store, without a scheduler: ``status``, ``list``,
``schedules``, ``forecast`` read it; ``cancel`` changes one task under a lease.
Nothing is scheduled or executed."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson

from asched.cli.format import plural, table, when
from asched.engine.recurring import Schedule
from asched.errors import AschedError, TaskValidationError
from asched.model import Task, TaskLifecycle
from asched.observability.forecast import BUCKETS_S, build_forecast, render_timeline
from asched.stores import Store, open_store
from asched.stores.memory import MemoryStore


class OpsError(Exception):
    """A read command cannot run; ``code`` is the exit status."""

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
    """Cancel a task that is not running.  The lease makes it safe against workers
    that claim before they start: once CANCELLED is written, no claim
    is granted, and a holder's late write is refused."""
    owner = f"asched-cli:{os.getpid()}"
    async with reading(store):
        task = await store.get(task_id)
        if task is None:
            raise OpsError(f"no task with id {task_id!r}")
        if task.is_terminal:
            raise OpsError(f"task {task_id} has already ended {task.lifecycle.name}")
        now = time.time()
        leases = await store.claim([task_id], owner, now, 30.0)
        if not leases:
            raise OpsError(f"task {task_id} is running in a worker; cancel it there")
        task = await store.get(task_id)
        assert task is not None
        if task.lifecycle is TaskLifecycle.RUNNING or task.is_terminal:
            await store.release(leases)
            raise OpsError(f"task {task_id} is {task.lifecycle.name}; nothing cancelled")
        task.transition(TaskLifecycle.CANCELLED, now, reason)
        task.finished_s = now
        refused = await store.save([task], {task_id: leases[0]})
        if refused:
            raise OpsError(f"task {task_id} changed hands meanwhile; nothing cancelled")
    print(f"cancelled {task_id}")


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
    lines = [f"{name:<11} {value}" for name, value in fields]
    rows = [(when(t.at), t.from_state.name, t.to_state.name, t.reason) for t in task.history]
    lines += ["", "history (UTC)", table(("time", "from", "to", "reason"), rows)]
    return "\n".join(lines)


async def list_tasks(store: Store, status: str | None, task_type: str | None, limit: int) -> None:
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
            print(f"skipping unreadable schedule {record.get('id')!r}: {exc}", file=sys.stderr)
    return schedules


async def show_forecast(store: Store, hours: float, bucket: str, task_type: str | None) -> None:
    async with reading(store):
        tasks = await store.load_unfinished()
        schedules = await _load_schedules(store)
    forecast = build_forecast(
        time.time(),
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
