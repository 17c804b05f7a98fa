"""The dashboard on a store alone: reads it, and acts on it under a lease.

No scheduler is started, so nothing runs here.  An action on a task first
claims it (the Store contract's lease), so workers that share the store
(``asched run --shared``) never start a task the dashboard is changing, and
its write is fenced; a task a worker holds (running, say) is asked of that worker
with a request in the store, as ``asched cancel`` does.
Every action is recorded in the task's history and in its metadata audit
trail.  Throughput is measured from the change in finished counts between
samples (no scan of finished tasks); what only a live scheduler knows (its
ready queue, its limits) is ``None``.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from asched.dashboard.forecast_merge import add_pending
from asched.dashboard.queries import Counts, ForecastQuery
from asched.dashboard.sources import (
    HOST,
    RETRYABLE,
    ActionRefusedError,
    Actor,
    DashboardSource,
    retry_options,
)
from asched.engine.recurring import Schedule
from asched.errors import ScheduleNotFoundError, TaskNotFoundError
from asched.model import Task, TaskLifecycle, TaskMetadata, new_task_id
from asched.observability.forecast import BUCKETS_S, build_forecast
from asched.stores.base import CONTROL_ACTIONS, LEASE_ENDING_STATES, Store

logger = logging.getLogger(__name__)

L = TaskLifecycle
_PAUSABLE = frozenset({L.QUEUED, L.SCHEDULED, L.RETRYING})
_LEASE_S = 30.0
_WINDOW_S = 3600.0
_UPCOMING = 50


# The states a live scheduler reports in "by_state".
_HELD_STATE_NAMES = ("QUEUED", "SCHEDULED", "PAUSED", "RUNNING", "RETRYING")


class StoreSource(DashboardSource):
    forecast_ttl_s = 10.0

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.owner = f"asched-dashboard:{HOST}:{os.getpid()}"
        # (time, completed, failed) totals, for rates without a scan.
        self._finished: deque[tuple[float, int, int]] = deque()
        self._forecasts: dict[tuple[float, str, str | None], tuple[float, dict[str, Any]]] = {}

    async def start(self) -> None:
        await self.store.open()
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        await self.store.close()

    # -- reads ---------------------------------------------------------------------

    def _note_finished(self, now: float, by_state: dict[str, int]) -> None:
        if self._finished and now < self._finished[-1][0]:
            return  # a concurrent read finished first with a later sample
        self._finished.append((now, by_state.get("COMPLETED", 0), by_state.get("FAILED", 0)))
        while self._finished and self._finished[0][0] < now - _WINDOW_S:
            self._finished.popleft()

    async def metrics(self, counts: Counts | None = None) -> dict[str, Any]:
        """The keys of ``Scheduler.get_system_load_metrics``, from the store's counts
        by state (an index-only query), never a scan of the tasks."""
        now = self.now()
        if counts is None:
            counts = await self.reader.state_counts(now)
        self._note_finished(now, counts.by_state)
        state = counts.by_state
        completed, failed, _ = self._finished_since(_WINDOW_S)
        minute_done, minute_failed, reach_s = self._finished_since(60.0)
        finished = completed + failed
        return {
            # Known once the samples reach back most of a minute.
            "tasks_per_minute": minute_done + minute_failed if reach_s >= 50.0 else None,
            "success_rate_1h": completed / finished if finished else None,
            "completed_1h": completed,
            "failed_1h": failed,
            "avg_duration_s_1h": None,
            "running": state.get("RUNNING", 0),
            "ready": counts.due_now,
            "waiting_for_limits": None,
            "scheduled": state.get("QUEUED", 0) + state.get("SCHEDULED", 0) - counts.due_now,
            "paused": state.get("PAUSED", 0),
            "retrying": state.get("RETRYING", 0),
            "max_concurrency": None,
            "utilization": None,
            "retries_1h": None,
            "lateness_ms": None,
            "duration_s_by_type": None,
            "by_state": {name: state.get(name, 0) for name in _HELD_STATE_NAMES},
            "breakers": None,
            "queue_by_priority": None,
            "by_concurrency_key": None,
            "executors": None,
        }

    def _finished_since(self, window_s: float) -> tuple[int, int, float]:
        """(completed, failed) since ``window_s`` ago by the samples, and how far
        back the samples actually reach."""
        if not self._finished:
            return 0, 0, 0.0
        now, completed, failed = self._finished[-1]
        base = next((s for s in self._finished if s[0] >= now - window_s), self._finished[-1])
        return max(0, completed - base[1]), max(0, failed - base[2]), now - base[0]

    async def forecast(self, hours: float, bucket: str, task_type: str | None) -> dict[str, Any]:
        """Pending tasks counted by the store, schedules by their triggers; reused for
        ``forecast_ttl_s`` (a 24 h view does not change in seconds, and the page polls it)."""
        now = self.now()
        key = (hours, bucket, task_type)
        cached = self._forecasts.get(key)
        if cached is not None and now - cached[0] < self.forecast_ttl_s:
            return cached[1]
        found = await self._build_forecast(now, hours, bucket, task_type)
        self._forecasts = {key: (now, found)}
        return found

    async def _build_forecast(
        self, now: float, hours: float, bucket: str, task_type: str | None
    ) -> dict[str, Any]:
        bucket_s = BUCKETS_S[bucket]
        origin = int(now // bucket_s) * bucket_s
        query = ForecastQuery(origin, bucket_s, now + hours * 3600, task_type, _UPCOMING)
        counts, runs = await self.reader.pending(query)
        recurring = build_forecast(
            now,
            hours * 3600,
            bucket_s,
            (),
            await self._schedules(),
            {},  # mean durations are only known to a running scheduler
            task_type=task_type,
            upcoming_limit=_UPCOMING,
        )
        return add_pending(recurring, counts, runs, origin, _UPCOMING)

    async def _schedules(self) -> list[Schedule]:
        found = []
        for record in await self.store.load_schedules():
            try:
                found.append(Schedule.from_record(record))
            except Exception as exc:
                logger.warning("unreadable schedule %r skipped: %s", record.get("id"), exc)
        return found

    async def schedules(self) -> list[dict[str, Any]]:
        found = [s.info() for s in await self._schedules()]
        found.sort(key=lambda i: (i["next_fire"] is None, i["next_fire"] or 0, i["id"]))
        return found

    async def get_task(self, task_id: str) -> Task:
        task = await self.store.get(task_id)
        if task is None:
            raise TaskNotFoundError(task_id)
        return task

    def breakers(self) -> dict[str, str]:
        return {}  # breaker state lives in each worker's memory

    async def workers(self) -> list[dict[str, Any]]:
        return await self.reader.lease_owners(self.now())

    # -- actions -------------------------------------------------------------------

    async def cancel(self, task_id: str, actor: Actor) -> dict[str, Any]:
        def apply(task: Task, now: float) -> None:
            task.transition(L.CANCELLED, now, f"cancelled {actor.describe()}")
            task.finished_s = now

        await self._change(task_id, "cancel", actor, apply)
        return {"cancelled": task_id}

    async def pause(self, task_id: str, actor: Actor) -> dict[str, Any]:
        def apply(task: Task, now: float) -> None:
            if task.lifecycle not in _PAUSABLE:
                raise ActionRefusedError(task_id, "pause", f"it is {task.lifecycle.name}")
            task.user_paused = True
            task.transition(L.PAUSED, now, f"paused {actor.describe()}")

        await self._change(task_id, "pause", actor, apply)
        return {"paused": task_id}

    async def resume(self, task_id: str, actor: Actor) -> dict[str, Any]:
        waiting = await self._unmet_dependencies(task_id)

        def apply(task: Task, now: float) -> None:
            if task.lifecycle is not L.PAUSED or not task.user_paused:
                raise ActionRefusedError(task_id, "resume", "it was not paused by request")
            task.user_paused = False
            if not waiting:
                task.transition(L.QUEUED, now, f"resumed {actor.describe()}")

        await self._change(task_id, "resume", actor, apply)
        return {"resumed": task_id, "waiting_for": waiting}

    async def _unmet_dependencies(self, task_id: str) -> list[str]:
        task = await self.get_task(task_id)
        unmet = []
        for dep_id in task.dependencies:
            dep = await self.store.get(dep_id)
            if dep is not None and not dep.is_terminal:
                unmet.append(dep_id)
        return unmet

    async def retry_now(self, task_id: str, actor: Actor) -> dict[str, Any]:
        original = await self.get_task(task_id)
        if original.lifecycle not in RETRYABLE:
            raise ActionRefusedError(task_id, "retry", f"it is {original.lifecycle.name}")
        copy_id = new_task_id()
        if original.lifecycle is L.RETRYING:

            def apply(task: Task, now: float) -> None:
                reason = f"retried now {actor.describe()} as task {copy_id}"
                task.transition(L.CANCELLED, now, reason)
                task.finished_s = now

            await self._change(task_id, "retry_now", actor, apply, new_task=copy_id)
        # A finished task's row is never written again: the copy carries the link.
        copy = self._copy(original, copy_id, actor)
        copy.metadata.audit_trail.append(
            actor.audit_entry("retry_now", self.now(), retry_of=task_id)
        )
        await self.store.insert([copy])
        return {"retried": task_id, "new_task": copy_id}

    def _copy(self, original: Task, copy_id: str, actor: Actor) -> Task:
        options = retry_options(original, actor)
        now = self.now()
        meta = TaskMetadata(created_by=options["created_by"], tags=options["tags"])
        meta.audit_trail.append(actor.audit_entry("create", now, retry_of=original.id))
        task = Task(
            copy_id,
            original.type,
            original.data_json,
            original.priority,
            created_s=now,
            due_s=now,
            executor_type=original.executor_type,
            max_retries=original.max_retries,
            backoff_factor=original.backoff_factor,
            timeout_s=original.timeout_s,
            concurrency_key=original.concurrency_key,
            metadata=meta,
        )
        task.transition(L.QUEUED, now, f"retry of {original.id} {actor.describe()}")
        return task

    async def _change(
        self,
        task_id: str,
        action: str,
        actor: Actor,
        apply: Callable[[Task, float], None],
        **extra: Any,
    ) -> None:
        """Claim the task, ``apply`` the change, record it, save it fenced by the lease."""
        task = await self.get_task(task_id)
        if task.is_terminal:
            raise ActionRefusedError(task_id, action, f"it has ended {task.lifecycle.name}")
        now = self.now()
        leases = await self.store.claim([task_id], self.owner, now, _LEASE_S)
        if not leases:
            if action not in CONTROL_ACTIONS:
                raise ActionRefusedError(task_id, action, "a worker holds it (running?)")
            # The worker holding its lease carries it out (within about a second).
            reason = f"{action} {actor.describe()}"
            entry = actor.audit_entry(action, now, reason=reason, **extra)
            await self.store.request_control(task_id, entry)
            logger.info("task %s: %s asked of its worker %s", task_id, action, actor.describe())
            return
        try:
            task = await self.get_task(task_id)
            if task.lifecycle is L.RUNNING or task.is_terminal:
                raise ActionRefusedError(task_id, action, f"it is {task.lifecycle.name}")
            apply(task, now)
            task.metadata.audit_trail.append(actor.audit_entry(action, now, **extra))
            refused = await self.store.save([task], {task_id: leases[0]})
        except BaseException:
            await self.store.release(leases)
            raise
        if refused:
            raise ActionRefusedError(task_id, action, "it changed hands meanwhile")
        if task.lifecycle not in LEASE_ENDING_STATES:
            await self.store.release(leases)
        logger.info("task %s: %s %s", task_id, action, actor.describe())

    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, actor: Actor
    ) -> dict[str, Any]:
        records = {r.get("id"): r for r in await self.store.load_schedules()}
        record = records.get(schedule_id)
        if record is None:
            raise ScheduleNotFoundError(schedule_id)
        if bool(record.get("paused", False)) == paused:
            state = "paused" if paused else "running"
            raise ActionRefusedError(schedule_id, "change", f"the schedule is already {state}")
        # A new revision: every worker takes the change in (see the Store contract).
        record = dict(record, paused=paused, revision=int(record.get("revision") or 0) + 1)
        if not paused:  # fires due while paused are skipped, as Scheduler.resume_schedule does
            record["settled_until_s"] = max(float(record.get("settled_until_s", 0.0)), self.now())
        await self.store.save_schedules([record])
        logger.info(
            "schedule %s: %s %s", schedule_id, "paused" if paused else "resumed", actor.describe()
        )
        return {"schedule": schedule_id, "paused": paused}
