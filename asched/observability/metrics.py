"""Load metrics, built from events: a subscriber counts outcomes in sliding windows.

The engine knows nothing of metrics.  :class:`LoadMetrics` hears the events
of tasks that finished an attempt (COMPLETED, or FAILED / RETRYING from
RUNNING) and keeps an :class:`~asched.core.windows.OutcomeWindow` plus the
mean duration of successful attempts per task type.
"""

from __future__ import annotations

from typing import Any

from asched.core.windows import OutcomeWindow
from asched.events import Event, TaskEvent
from asched.model import TaskLifecycle
from asched.model.states import COMPLETED, RUNNING

#: the states whose events LoadMetrics needs
OUTCOME_STATES = (TaskLifecycle.COMPLETED, TaskLifecycle.FAILED, TaskLifecycle.RETRYING)


class LoadMetrics:
    __slots__ = ("_durations", "outcomes")

    def __init__(self) -> None:
        self.outcomes = OutcomeWindow()
        # task type -> [completed attempts, their total seconds]
        self._durations: dict[str, list[float]] = {}

    def hear(self, event: Event) -> None:
        if not isinstance(event, TaskEvent) or event.from_state is not RUNNING:
            return
        now = event.at_s
        took = now - (event.started_s if event.started_s is not None else now)
        if event.to_state is not COMPLETED:
            self.outcomes.record(now, False, took)
            return
        self.outcomes.record(now, True, took)
        stats = self._durations.get(event.task_type)
        if stats is None:
            self._durations[event.task_type] = [1, took]
        else:
            stats[0] += 1
            stats[1] += took

    def mean_durations(self) -> dict[str, float]:
        """Mean seconds of a successful attempt, per task type, since start."""
        return {kind: total / n for kind, (n, total) in self._durations.items()}

    def window(self, now_s: float) -> dict[str, Any]:
        """The outcome figures of ``get_system_load_metrics``."""
        hour = self.outcomes.totals(now_s, 3600)
        minute = self.outcomes.totals(now_s, 60)
        return {
            "tasks_per_minute": minute.finished,
            "success_rate_1h": hour.success_rate,
            "completed_1h": hour.succeeded,
            "failed_1h": hour.failed,
            "avg_duration_s_1h": hour.busy_s / hour.finished if hour.finished else None,
        }
