"""The observability part of the Scheduler API: load metrics, the execution
forecast, circuit states, and choosing a slot from the forecast."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from asched.engine.intake import TaskIntake
from asched.engine.loop import Engine
from asched.engine.schedules import ScheduleRunner
from asched.errors import TaskValidationError
from asched.model.states import PAUSED, RETRYING
from asched.observability.forecast import BUCKETS_S, build_forecast
from asched.strategies.slots import SlotChoice, SlotScorer, choose_slot


class InsightAPI(Engine):
    """Metrics, forecasts and slot choice, read from the engine's state."""

    _intake: TaskIntake
    _schedules: ScheduleRunner

    def breaker_states(self) -> dict[str, str]:
        """Each circuit breaker's state: ``closed``, ``open`` or ``half_open``."""
        now = self._clock_override.now() if self._clock_override else time.time()
        states = self._policies.breaker_states(now)
        return {name: state.value for name, state in states.items()}

    async def get_system_load_metrics(self) -> dict[str, Any]:
        now = self.clock.now()
        hour = self.outcomes.totals(now, 3600)
        minute = self.outcomes.totals(now, 60)
        limits = self._limits
        return {
            "tasks_per_minute": minute.finished,
            "success_rate_1h": hour.success_rate,
            "completed_1h": hour.succeeded,
            "failed_1h": hour.failed,
            "avg_duration_s_1h": hour.busy_s / hour.finished if hour.finished else None,
            "running": limits.running,
            "ready": len(self._ready),
            "waiting_for_limits": limits.parked_count(),
            "scheduled": len(self._wheel),
            "paused": self.state_count(PAUSED),
            "retrying": self.state_count(RETRYING),
            "max_concurrency": limits.total_limit,
            "utilization": limits.running / limits.total_limit,
        }

    async def get_task_execution_forecast(
        self,
        lookahead_hours: float = 24,
        *,
        task_type: str | None = None,
        bucket: str = "hour",
        upcoming_limit: int = 1000,
    ) -> dict[str, Any]:
        """Every one-off and recurring run expected in the next ``lookahead_hours``:
        counts per bucket by type and priority, the expected busy seconds per bucket
        (from each type's measured mean duration) and the upcoming runs."""
        if isinstance(lookahead_hours, bool) or not isinstance(lookahead_hours, int | float):
            raise TaskValidationError("lookahead_hours", lookahead_hours, "expected a number")
        if not lookahead_hours > 0:
            raise TaskValidationError("lookahead_hours", lookahead_hours, "must be > 0")
        if bucket not in BUCKETS_S:
            raise TaskValidationError("bucket", bucket, f"one of {', '.join(BUCKETS_S)}")
        return build_forecast(
            self.clock.now(),
            lookahead_hours * 3600,
            BUCKETS_S[bucket],
            self._active.values(),
            self._schedules.schedules.values(),
            self.mean_durations(),
            task_type=task_type,
            upcoming_limit=upcoming_limit,
        )

    def _choose_slot(
        self,
        now: float,
        task_type: str,
        task_data: Mapping[str, Any] | None,
        execution_time: datetime | None,
        window: Any,
        scorer: SlotScorer | None,
        options: dict[str, Any],
    ) -> SlotChoice:
        if execution_time is not None or "delay" in options:
            raise TaskValidationError("window", window, "give a window or a time, not both")
        if (
            not isinstance(window, tuple | list)
            or len(window) != 2
            or not all(isinstance(w, datetime) for w in window)
        ):
            raise TaskValidationError(
                "window", window, "expected (not_before, not_after) datetimes"
            )
        start, end = (self._intake.due_of(now, w) for w in window)
        if end < start:
            raise TaskValidationError("window", window, "not_after is before not_before")
        if scorer is not None and not callable(scorer):
            raise TaskValidationError("slot_strategy", scorer, "expected a function")
        start = max(start, now)
        end = max(end, start)
        forecast = build_forecast(
            now,
            end - now + 3600,
            3600,
            self._active.values(),
            self._schedules.schedules.values(),
            {},
            upcoming_limit=0,
        )
        load = {int(b["start"].timestamp() // 3600): b["total"] for b in forecast["buckets"]}
        return choose_slot(
            start, end, load, 3600, scorer=scorer, task_type=task_type, task_data=task_data
        )
