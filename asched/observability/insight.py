"""What a scheduler reports about itself: load figures, the execution forecast,
and choosing a quiet slot from the forecast.  Read from the engine's views and
the metrics subscriber; nothing here scans the store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from asched.core.checks import require_number
from asched.engine.intake import TaskIntake
from asched.engine.loop import Engine
from asched.engine.recurring import Schedule
from asched.errors import TaskValidationError
from asched.model import TaskLifecycle, TaskPriority
from asched.model.states import PAUSED, RETRYING, RUNNING
from asched.observability.forecast import BUCKETS_S, build_forecast
from asched.observability.metrics import LoadMetrics
from asched.stores.base import worker_status
from asched.strategies.slots import SlotChoice, SlotScorer, choose_slot


def load_metrics(
    engine: Engine, metrics: LoadMetrics, breakers: Mapping[str, str]
) -> dict[str, Any]:
    """This process's figures: outcomes from the metrics subscriber, depths and loads
    from the engine's own counters and the tasks it holds (never the store)."""
    limits = engine.limits
    figures = metrics.window(engine.clock.now())
    figures.update(
        {
            "running": limits.running,
            "ready": len(engine.line),
            "waiting_for_limits": limits.parked_count(),
            "scheduled": engine.timers_pending(),
            "paused": engine.state_count(PAUSED),
            "retrying": engine.state_count(RETRYING),
            "max_concurrency": limits.total_limit,
            "utilization": limits.running / limits.total_limit,
            "by_state": {s.name: engine.state_count(s) for s in _HELD_STATES},
            "breakers": dict(breakers),
        }
    )
    figures.update(_loads(engine))
    return figures


def _loads(engine: Engine) -> dict[str, Any]:
    """Waiting tasks by priority, tasks per concurrency key, executor use: one pass
    over the tasks this process holds."""
    by_priority = dict.fromkeys((p.name for p in TaskPriority), 0)
    by_key: dict[str, dict[str, int]] = {}
    by_executor: dict[str, int] = {}
    for task in engine.tasks():
        running = task.lifecycle is RUNNING
        if running:
            by_executor[task.executor_type] = by_executor.get(task.executor_type, 0) + 1
        else:
            by_priority[task.priority.name] += 1
        key = task.concurrency_key
        if key is not None:
            counts = by_key.setdefault(key, {"running": 0, "waiting": 0})
            counts["running" if running else "waiting"] += 1
    sizes = engine.attempts.pool_sizes()
    return {
        "queue_by_priority": by_priority,
        "by_concurrency_key": by_key,
        "executors": {
            name: {"running": by_executor.get(name, 0), "size": size}
            for name, size in sizes.items()
        },
    }


_HELD_STATES = tuple(
    s for s in TaskLifecycle if not s.is_terminal and s is not TaskLifecycle.CREATED
)


def forecast(
    engine: Engine,
    schedules: Iterable[Schedule],
    metrics: LoadMetrics,
    lookahead_hours: float,
    task_type: str | None,
    bucket: str,
    upcoming_limit: int,
) -> dict[str, Any]:
    hours = require_number("lookahead_hours", lookahead_hours, above=0)
    if bucket not in BUCKETS_S:
        raise TaskValidationError("bucket", bucket, f"one of {', '.join(BUCKETS_S)}")
    return build_forecast(
        engine.clock.now(),
        hours * 3600,
        BUCKETS_S[bucket],
        engine.tasks(),
        schedules,
        metrics.mean_durations(),
        task_type=task_type,
        upcoming_limit=upcoming_limit,
    )


def choose_time(
    engine: Engine,
    intake: TaskIntake,
    schedules: Iterable[Schedule],
    task_type: str,
    task_data: Mapping[str, Any] | None,
    window: Any,
    scorer: Any,
) -> tuple[datetime, dict[str, Any]]:
    """The time to schedule a task at within ``window``, and the audit entry that
    records the choice and its reason."""
    bounds = intake.window_of(engine.clock.now(), window)
    if scorer is not None and not callable(scorer):
        raise TaskValidationError("slot_strategy", scorer, "expected a function")
    slot = quietest_slot(engine, schedules, bounds, scorer, task_type, task_data)
    chosen = datetime.fromtimestamp(slot.at_s, UTC)
    return chosen, {"action": "slot_chosen", "at": chosen.isoformat(), "reason": slot.reason}


def quietest_slot(
    engine: Engine,
    schedules: Iterable[Schedule],
    window_s: tuple[float, float],
    scorer: SlotScorer | None,
    task_type: str,
    task_data: Mapping[str, Any] | None,
) -> SlotChoice:
    """The least busy hour in ``window_s`` by the forecast, or the best by ``scorer``."""
    now = engine.clock.now()
    start = max(window_s[0], now)
    end = max(window_s[1], start)
    expected = build_forecast(
        now, end - now + 3600, 3600, engine.tasks(), schedules, {}, upcoming_limit=0
    )
    load = {int(b["start"].timestamp() // 3600): b["total"] for b in expected["buckets"]}
    return choose_slot(
        start, end, load, 3600, scorer=scorer, task_type=task_type, task_data=task_data
    )


def worker_figures(engine: Engine, metrics: LoadMetrics) -> dict[str, Any]:
    """What this worker sends with its registry heartbeat: the outcome counts of
    :func:`load_metrics` and its queue, for :func:`cluster_figures` to add up."""
    window = metrics.window(engine.clock.now())
    limits = engine.limits
    return {
        "tasks_per_minute": window["tasks_per_minute"],
        "completed_1h": window["completed_1h"],
        "failed_1h": window["failed_1h"],
        "retries_1h": window["retries_1h"],
        "lateness_p99_ms": window["lateness_ms"]["p99"],
        "ready": len(engine.line),
        "waiting_for_limits": limits.parked_count(),
        "scheduled": engine.timers_pending(),
    }


_SUMMED = ("tasks_per_minute", "completed_1h", "failed_1h", "retries_1h")
_QUEUES = ("ready", "waiting_for_limits", "scheduled")


def cluster_figures(records: Iterable[Mapping[str, Any]], now_s: float) -> dict[str, Any]:
    """The cluster's figures from the worker registry: counts summed over the live
    workers (each as of its last heartbeat), the worst lateness p99 among them,
    and the ids of the workers that stopped beating."""
    live: list[Mapping[str, Any]] = []
    lost: list[str] = []
    for record in records:
        if worker_status(record, now_s) == "live":
            live.append(record)
        else:
            lost.append(str(record["id"]))
    totals = dict.fromkeys(_SUMMED + _QUEUES, 0)
    worst: float | None = None
    for record in live:
        figures = record.get("figures") or {}
        for name in totals:
            totals[name] += int(figures.get(name) or 0)
        p99 = figures.get("lateness_p99_ms")
        if p99 is not None and (worst is None or p99 > worst):
            worst = float(p99)
    finished = totals["completed_1h"] + totals["failed_1h"]
    return {
        "workers": len(live),
        "lost_workers": lost,
        "running": sum(int(r.get("running", 0)) for r in live),
        **totals,
        "success_rate_1h": totals["completed_1h"] / finished if finished else None,
        "lateness_p99_ms": worst,
    }
