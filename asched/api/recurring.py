"""Scheduler's methods for recurring schedules (run by the engine's schedule runner)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from asched.config import SchedulerConfig
from asched.core.misfire import DEFAULT_MISFIRE_GRACE_S
from asched.engine.intake import TaskIntake
from asched.engine.loop import Engine
from asched.engine.schedule_spec import build_schedule
from asched.engine.schedules import ScheduleRunner
from asched.model import TaskPriority


class RecurringMethods:
    config: SchedulerConfig
    _engine: Engine
    _intake: TaskIntake
    _schedules: ScheduleRunner

    async def schedule_recurring(
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
        """Create (or, with a known ``schedule_id``, update) a recurring schedule.

        Give ``cron`` (5 fields, an optional 6th for seconds, or ``@daily``-style
        aliases; read in ``timezone``, default the configured zone or the machine's)
        or ``interval`` (seconds or a timedelta; first fire at ``start`` or one
        interval from now).  Each fire becomes a task with the other options.
        """
        self._engine.require_running()
        schedule = build_schedule(
            self._intake,
            self._engine.clock.now(),
            self.config.timezone,
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
            task_options=task_options,
        )
        return await self._schedules.add(schedule)

    async def pause_schedule(self, schedule_id: str) -> bool:
        """Stop firing; fires due while paused are skipped.  False if already paused."""
        return await self._schedules.set_paused(schedule_id, True)

    async def resume_schedule(self, schedule_id: str) -> bool:
        return await self._schedules.set_paused(schedule_id, False)

    async def remove_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule (tasks it already created stay).  False if unknown."""
        return await self._schedules.remove(schedule_id)

    async def get_schedule(self, schedule_id: str) -> dict[str, Any]:
        """Next fire, last fire, state and counters of one schedule."""
        return self._schedules.get(schedule_id).info()

    async def list_schedules(self) -> list[dict[str, Any]]:
        return self._schedules.infos()
