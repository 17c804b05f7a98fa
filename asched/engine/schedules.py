"""Runs recurring schedules inside the engine: arms their next fires, turns each
fire into a task, and plans what to do about fires that were missed."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asched.core.misfire import plan_misfires
from asched.core.wheel import Timer
from asched.engine.intake import TaskIntake
from asched.engine.recurring import Schedule
from asched.engine.timers import ArmedWheel
from asched.errors import ScheduleNotFoundError, TaskValidationError
from asched.model import Task

if TYPE_CHECKING:
    from asched.engine.loop import Engine

logger = logging.getLogger(__name__)


class ScheduleRunner:
    """A service of the engine: started after recovery, stopped before the drain."""

    def __init__(self, engine: Engine, intake: TaskIntake, rng: random.Random) -> None:
        self._engine = engine
        self._intake = intake
        self._rng = rng
        self.schedules: dict[str, Schedule] = {}
        self._timers: dict[str, Timer[Schedule]] = {}
        self._wheel: ArmedWheel[Schedule] | None = None
        self._unhook: Callable[[], None] | None = None
        self._instances: dict[str, set[str]] = {}
        self._lock = asyncio.Lock()
        self._firing: asyncio.Task[None] | None = None
        self._unfollow: Callable[[], None] | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        engine = self._engine
        self._wheel = ArmedWheel(engine.clock, self._on_due)
        self.schedules = {}
        legacy = []
        for record in await engine.store.load_schedules():
            schedule = _readable(record)
            if schedule is not None:
                self.schedules[schedule.id] = schedule
                if "revision" not in record:  # written before revisions: give it one
                    legacy.append(schedule.to_record())
        if legacy:
            await engine.store.save_schedules(legacy)
        self._instances = {sid: set() for sid in self.schedules}
        self._hook()
        for task in engine.tasks():
            self.track(task)
        coordinator = engine.shared_coordinator
        if coordinator is not None:  # other processes change schedules too
            self._unfollow = coordinator.cluster.follow(self.refresh)
        await self._settle(list(self.schedules.values()))

    async def stop(self) -> None:
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None
        if self._wheel is not None:
            self._wheel.stop()
        if self._firing is not None:
            await asyncio.gather(self._firing, return_exceptions=True)
            self._firing = None

    # -- the public operations ---------------------------------------------------------

    async def add(self, schedule: Schedule) -> str:
        """Create a schedule, or change the one stored under its id.  The same
        definition again changes nothing (an interval keeps its stored phase)."""
        async with self._lock:
            schedule.revision = 1
            found = await self._engine.store.create_schedule(schedule.to_record())
            stored = None if found is None else _readable(found)
            if stored is not None:
                schedule.take_anchor(stored)
                if schedule.same_definition(stored):
                    schedule = stored  # nothing to change: carry on with the stored one
                else:
                    schedule.take_progress(stored)
                    await self._engine.store.save_schedules([schedule.to_record()])
            elif found is not None:  # an unreadable record: replaced
                await self._engine.store.save_schedules([schedule.to_record()])
            self._replace(schedule)
            await self._settle_locked([schedule])
        return schedule.id

    def _replace(self, schedule: Schedule) -> None:
        existing = self.schedules.get(schedule.id)
        if existing is not None:
            self._disarm(existing)
        self.schedules[schedule.id] = schedule
        self._instances.setdefault(schedule.id, set())
        self._hook()

    async def refresh(self) -> None:
        """Take in what other processes changed: new, redefined, paused, resumed and
        removed schedules (a change shows as a new revision)."""
        async with self._lock:
            await self._refresh_locked()

    async def _refresh_locked(self) -> None:
        changed: list[Schedule] = []
        seen: set[str] = set()
        for record in await self._engine.store.load_schedules():
            schedule = _readable(record)
            if schedule is None:
                continue
            seen.add(schedule.id)
            local = self.schedules.get(schedule.id)
            if (
                local is None
                or local.revision != schedule.revision
                or local.paused != schedule.paused
                or not local.same_definition(schedule)
            ):
                self._replace(schedule)
                changed.append(schedule)
        for schedule_id in [sid for sid in self.schedules if sid not in seen]:
            self._drop(schedule_id)
        if changed:
            await self._settle_locked(changed)

    def _drop(self, schedule_id: str) -> Schedule | None:
        schedule = self.schedules.pop(schedule_id, None)
        if schedule is not None:
            self._disarm(schedule)
            self._instances.pop(schedule_id, None)
            self._hook()
        return schedule

    def infos(self) -> list[dict[str, Any]]:
        """Every schedule's ``info()``, soonest next fire first."""
        found = [s.info() for s in self.schedules.values()]
        found.sort(key=lambda i: (i["next_fire"] is None, i["next_fire"] or 0, i["id"]))
        return found

    def get(self, schedule_id: str) -> Schedule:
        schedule = self.schedules.get(schedule_id)
        if schedule is None:
            raise ScheduleNotFoundError(schedule_id)
        return schedule

    async def set_paused(self, schedule_id: str, paused: bool) -> bool:
        async with self._lock:
            if self._engine.shared_coordinator is not None:
                await self._refresh_locked()  # change the latest revision
            schedule = self.get(schedule_id)
            if schedule.paused == paused:
                return False
            schedule.paused = paused
            schedule.revision += 1
            if paused:
                self._disarm(schedule)
                await self._engine.store.save_schedules([schedule.to_record()])
            else:
                # Fires that fell due while paused are skipped, not caught up.
                schedule.settled_until_s = max(schedule.settled_until_s, self._now())
                await self._engine.store.save_schedules([schedule.to_record()])
                await self._settle_locked([schedule])
        return True

    async def remove(self, schedule_id: str) -> bool:
        async with self._lock:
            if self._drop(schedule_id) is None:
                return False
            await self._engine.store.delete_schedules([schedule_id])
        return True

    # -- instances -----------------------------------------------------------------------

    def _hook(self) -> None:
        # Hear about finished tasks only while schedules exist.
        if self.schedules and self._unhook is None:
            self._unhook = self._engine.on_settled(self.settled)
        elif not self.schedules and self._unhook is not None:
            self._unhook()
            self._unhook = None

    def track(self, task: Task) -> None:
        """Count a live task that a schedule created."""
        sid = _schedule_of(task.id)
        if sid is not None and sid in self._instances and not task.is_terminal:
            self._instances[sid].add(task.id)

    def settled(self, task: Task) -> None:
        sid = _schedule_of(task.id)
        if sid is not None:
            instances = self._instances.get(sid)
            if instances is not None:
                instances.discard(task.id)

    # -- firing --------------------------------------------------------------------------

    def _now(self) -> float:
        return self._engine.clock.now()

    async def _settle(self, schedules: list[Schedule]) -> None:
        async with self._lock:
            await self._settle_locked(schedules)

    async def _settle_locked(self, schedules: list[Schedule]) -> None:
        """Run or skip every due fire of ``schedules``, persist them and arm the next."""
        now = self._now()
        tasks: list[Task] = []
        for schedule in schedules:
            if schedule.paused:
                continue
            fires = self._due_fires(schedule, now)
            if fires:  # only a fire needs the count (a read of the store when shared)
                await self._count_instances(schedule)
                tasks += self._fire_tasks(schedule, fires, now)
        await self._submit(tasks, now)
        records = [s.to_record() for s in schedules]
        stale = await self._engine.store.save_schedule_progress(records) if records else []
        for schedule in schedules:
            self._arm(schedule)
        if stale:  # changed or removed by another process meanwhile
            await self._refresh_locked()

    def _due_fires(self, schedule: Schedule, now: float) -> list[float]:
        """The fires to run now; those skipped as late or coalesced are counted."""
        plan = plan_misfires(
            schedule.trigger,
            last_fire_epoch=schedule.settled_until_s,
            now_epoch=now,
            grace_s=schedule.misfire_grace_s,
            coalesce=schedule.coalesce,
            max_catch_up=schedule.max_catch_up,
        )
        schedule.skipped_late += plan.skipped_late
        schedule.skipped_coalesced += plan.skipped_coalesced + plan.skipped_over_cap
        schedule.settled_until_s = max(now, schedule.settled_until_s)
        schedule.next_fire_s = plan.next_fire
        return list(plan.run_now)

    def _fire_tasks(self, schedule: Schedule, fires: list[float], now: float) -> list[Task]:
        """A task per fire, but none past ``max_instances`` (skipped and counted)."""
        tasks: list[Task] = []
        instances = self._instances.setdefault(schedule.id, set())
        for fire in fires:
            if len(instances) + len(tasks) >= schedule.max_instances:
                schedule.skipped_max_instances += 1
                logger.info(
                    "schedule %s: fire at %s skipped, max_instances=%d reached",
                    schedule.id,
                    fire,
                    schedule.max_instances,
                )
                continue
            tasks.append(self._task_for(schedule, fire, now))
            schedule.last_fire_s = fire
            schedule.fired += 1
        return tasks

    async def _count_instances(self, schedule: Schedule) -> None:
        """With a shared store, the schedule's unfinished tasks in the whole cluster:
        the store's, less those this process has finished and not yet written."""
        engine = self._engine
        if engine.memory is not None:
            return  # this process sees every instance itself
        ids = set(await engine.store.unfinished_ids(f"{schedule.id}@"))
        dirty = engine.writeback.dirty if engine.writeback is not None else {}
        self._instances[schedule.id] = {
            task_id for task_id in ids if not (task_id in dirty and dirty[task_id].is_terminal)
        }

    def _task_for(self, schedule: Schedule, fire: float, now: float) -> Task:
        task = self._intake.build(
            now,
            schedule.task_type,
            None,
            None,
            schedule.priority,
            task_id=schedule.task_id_for(fire),
            **schedule.task_options,
        )
        task.data_json = schedule.data_json
        jitter = schedule.jitter_s
        task.due_s = fire + (self._rng.uniform(0, jitter) if jitter else 0.0)
        return task

    async def _submit(self, tasks: list[Task], now: float) -> None:
        """Store each fire's task on its own (a duplicate fails alone), concurrently,
        so a durable store commits them together."""
        if not tasks:
            return
        submit = self._engine.submit
        outcomes = await asyncio.gather(
            *(submit([task], now) for task in tasks), return_exceptions=True
        )
        failure: BaseException | None = None
        for task, outcome in zip(tasks, outcomes, strict=True):
            if outcome is None:
                self.track(task)
            elif isinstance(outcome, TaskValidationError) and outcome.field == "task_id":
                continue  # another scheduler on this store created this fire's task already
            elif failure is None:
                failure = outcome
        if failure is not None:
            raise failure

    # -- timer ---------------------------------------------------------------------------

    def _arm(self, schedule: Schedule) -> None:
        self._disarm(schedule)
        if schedule.paused or schedule.next_fire_s is None or self._wheel is None:
            return
        self._timers[schedule.id] = self._wheel.insert(schedule.next_fire_s, schedule)

    def _disarm(self, schedule: Schedule) -> None:
        timer = self._timers.pop(schedule.id, None)
        if timer is not None and self._wheel is not None:
            self._wheel.cancel(timer)

    def _on_due(self, due: list[Schedule], now_s: float) -> None:
        for schedule in due:
            self._timers.pop(schedule.id, None)
        previous = self._firing
        self._firing = asyncio.get_running_loop().create_task(self._fire(due, previous))

    async def _fire(self, due: list[Schedule], previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        live = [s for s in due if self.schedules.get(s.id) is s]
        try:
            await self._settle(live)
        except Exception:
            logger.exception("firing schedules %s failed", [s.id for s in live])


def _schedule_of(task_id: str) -> str | None:
    head, sep, _ = task_id.rpartition("@")
    return head if sep else None


def _readable(record: dict[str, Any]) -> Schedule | None:
    try:
        return Schedule.from_record(record)
    except TaskValidationError as exc:
        logger.error("skipping unreadable schedule record %r: %s", record.get("id"), exc)
        return None
