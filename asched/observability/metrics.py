"""Load metrics, built from events: a subscriber counts outcomes in sliding windows.

The engine knows nothing of metrics.  :class:`LoadMetrics` hears the events of
tasks that finished an attempt (COMPLETED, or FAILED / RETRYING from RUNNING)
and keeps an :class:`~asched.core.windows.OutcomeWindow` plus the mean
duration of successful attempts per task type.

Hearing an event only appends it to a list (a C call, no Python frame on the
engine's hot path); the list is folded into the windows when the figures are
read and once a second.  The windows are keyed on each event's own time, so
folding late changes no figure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from asched.background import cancel_and_wait
from asched.core.windows import OutcomeWindow, Samples
from asched.events import Event
from asched.model import TaskLifecycle
from asched.model.states import COMPLETED, RETRYING, RUNNING

#: the states whose events LoadMetrics needs
OUTCOME_STATES = (TaskLifecycle.COMPLETED, TaskLifecycle.FAILED, TaskLifecycle.RETRYING)
FOLD_EVERY_S = 1.0


class LoadMetrics:
    __slots__ = (
        "_durations",
        "_folder",
        "_pending",
        "hear",
        "lateness",
        "outcomes",
        "retries",
        "took_by_type",
    )

    def __init__(self) -> None:
        self.outcomes = OutcomeWindow()
        # task type -> [completed attempts, their total seconds]
        self._durations: dict[str, list[float]] = {}
        #: seconds from due to start, per finished attempt
        self.lateness = Samples()
        #: seconds per successful attempt, per task type (the most recent 1024)
        self.took_by_type: dict[str, Samples] = {}
        #: one sample per attempt that failed and will be retried
        self.retries = Samples()
        # Only OUTCOME_STATES are subscribed to, and they only produce TaskEvents.
        self._pending: list[Any] = []
        #: the listener to subscribe to OUTCOME_STATES: a C-level append
        self.hear: Callable[[Event], None] = self._pending.append
        self._folder: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._folder = asyncio.get_running_loop().create_task(self._fold_forever())

    def background_tasks(self) -> list[asyncio.Task[None]]:
        return [] if self._folder is None else [self._folder]

    async def stop(self) -> None:
        await cancel_and_wait(self._folder)
        self._folder = None
        self.fold()

    async def _fold_forever(self) -> None:
        while True:
            await asyncio.sleep(FOLD_EVERY_S)
            self.fold()

    def fold(self) -> None:
        """Count the events heard since the last fold."""
        pending = self._pending
        if not pending:
            return
        events = pending[:]
        pending.clear()
        record = self.outcomes.record
        durations = self._durations
        late_at, late_value = self.lateness.recorders()
        for event in events:
            _, task_type, _, now, from_state, to_state, _, started, due = event
            if from_state is not RUNNING:
                continue
            if started is None:
                started = now
            took = now - started
            late_at(now)
            late_value(started - due if started > due else 0.0)
            if to_state is not COMPLETED:
                record(now, False, took)
                if to_state is RETRYING:
                    self.retries.record(now, 1.0)
                continue
            record(now, True, took)
            stats = durations.get(task_type)
            if stats is None:
                durations[task_type] = [1, took]
                self.took_by_type[task_type] = Samples(1024)
            else:
                stats[0] += 1
                stats[1] += took
            self.took_by_type[task_type].record(now, took)

    def mean_durations(self) -> dict[str, float]:
        """Mean seconds of a successful attempt, per task type, since start."""
        self.fold()
        return {kind: total / n for kind, (n, total) in self._durations.items()}

    def window(self, now_s: float) -> dict[str, Any]:
        """The outcome figures of ``get_system_load_metrics``."""
        self.fold()
        hour = self.outcomes.totals(now_s, 3600)
        minute = self.outcomes.totals(now_s, 60)
        p50, p95, p99 = self.lateness.percentiles(now_s, 3600, (0.5, 0.95, 0.99))
        return {
            "tasks_per_minute": minute.finished,
            "success_rate_1h": hour.success_rate,
            "completed_1h": hour.succeeded,
            "failed_1h": hour.failed,
            "retries_1h": len(self.retries.within(now_s, 3600)),
            "avg_duration_s_1h": hour.busy_s / hour.finished if hour.finished else None,
            "lateness_ms": {
                "p50": _ms(p50),
                "p95": _ms(p95),
                "p99": _ms(p99),
            },
            "duration_s_by_type": {
                kind: dict(
                    zip(("p50", "p95"), samples.percentiles(now_s, 3600, (0.5, 0.95)), strict=True)
                )
                for kind, samples in self.took_by_type.items()
            },
        }


def _p50_p95(values: list[float | None]) -> dict[str, float | None]:
    return {"p50": values[0], "p95": values[1]}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)
