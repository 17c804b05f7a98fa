"""The alert rules: what the alert manager's events and samples mean.

Functions over an :class:`~asched.observability.alerting.AlertManager` (its
detectors, thresholds and gate); each raises or resolves conditions through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asched.events import CircuitClosed, CircuitOpened, TaskEvent
from asched.observability.alerts import Alert, AlertKind, Severity, alert_time
from asched.observability.anomaly import Verdict

if TYPE_CHECKING:
    from asched.observability.alerting import AlertManager

RETRY_STORM_KEY = "retry_storm"
FAILURE_RATE_KEY = "failure_rate"
BACKLOG_KEY = "backlog_growth"


def task_failed(manager: AlertManager, event: TaskEvent) -> None:
    alert = Alert(
        AlertKind.TASK_FAILED,
        Severity.WARNING,
        f"task {event.task_id} ({event.task_type}) failed for good",
        f"task_failed:{event.task_type}",
        alert_time(event.at_s),
        {"task_id": event.task_id, "task_type": event.task_type, "reason": event.reason},
    )
    chosen = manager.gate.occurs(alert, event.at_s)
    if chosen is not None:
        manager.send(chosen)


def circuit_changed(manager: AlertManager, event: CircuitOpened | CircuitClosed) -> None:
    key = f"circuit_open:{event.name}"
    if isinstance(event, CircuitOpened):
        manager.raise_condition(
            AlertKind.CIRCUIT_OPEN,
            key,
            f"circuit {event.name} opened",
            Severity.CRITICAL,
            circuit=event.name,
            reason=event.reason,
        )
    else:
        manager.resolve_condition(
            AlertKind.CIRCUIT_OPEN, key, f"circuit {event.name} closed", circuit=event.name
        )


def judge_failure_rate(manager: AlertManager, verdict: Verdict | None) -> None:
    detector = manager.failure_rate
    details = {
        "failure_rate": round(detector.last_rate, 4),
        "baseline": round(detector.baseline, 4),
        "attempts": detector.last_volume,
    }
    if verdict is Verdict.ANOMALY:
        manager.raise_condition(
            AlertKind.FAILURE_RATE,
            FAILURE_RATE_KEY,
            f"failure rate {detector.last_rate:.0%} (baseline {detector.baseline:.0%})",
            Severity.CRITICAL,
            **details,
        )
    elif verdict is Verdict.NORMAL:
        title = f"failure rate back to {detector.last_rate:.0%}"
        manager.resolve_condition(AlertKind.FAILURE_RATE, FAILURE_RATE_KEY, title, **details)


def judge_retry_storm(manager: AlertManager, now_s: float) -> None:
    verdict = manager.retry_storm.judge(now_s)
    window = manager.thresholds.retry_storm_window_s
    count = manager.retry_storm.window.count(now_s)
    if verdict is Verdict.ANOMALY:
        by_type = dict(manager.retries_by_type.most_common(5))
        manager.raise_condition(
            AlertKind.RETRY_STORM,
            RETRY_STORM_KEY,
            f"retry storm: {count} retries in {window:g}s",
            Severity.WARNING,
            retries=count,
            window_s=window,
            by_type=by_type,
        )
    elif verdict is Verdict.NORMAL and manager.resolve_condition(
        AlertKind.RETRY_STORM, RETRY_STORM_KEY, "retry storm over", retries=count
    ):
        manager.retries_by_type.clear()


def judge_lateness(manager: AlertManager, now_s: float) -> None:
    late, manager.late_starts[:] = manager.late_starts[:], []
    for task_id, task_type, at_s, late_s in late:
        manager.last_late_s[task_type] = at_s
        manager.raise_condition(
            AlertKind.LATENESS,
            f"lateness:{task_type}",
            f"{task_type} tasks start late ({late_s:.0f}s past due)",
            Severity.WARNING,
            task_type=task_type,
            task_id=task_id,
            late_s=round(late_s, 3),
        )
    for task_type, last_s in list(manager.last_late_s.items()):
        if now_s - last_s >= manager.thresholds.lateness_clear_s:
            del manager.last_late_s[task_type]
            manager.resolve_condition(
                AlertKind.LATENESS,
                f"lateness:{task_type}",
                f"{task_type} tasks start on time again",
                task_type=task_type,
            )


async def sample_backlog(manager: AlertManager, now_s: float) -> None:
    figures = await manager.scheduler.get_system_load_metrics()
    cluster = figures.get("cluster")
    if cluster is not None:
        judge_workers(manager, set(cluster["lost_workers"]))
    backlog = float(figures.get("ready", 0) or 0) + float(figures.get("waiting_for_limits", 0) or 0)
    verdict = manager.backlog.add(now_s, backlog)
    rate = round(manager.backlog.growth_per_s(), 3)
    if verdict is Verdict.ANOMALY:
        manager.raise_condition(
            AlertKind.BACKLOG_GROWTH,
            BACKLOG_KEY,
            f"backlog of {backlog:.0f} growing by {rate:g} tasks/s",
            Severity.WARNING,
            backlog=backlog,
            growth_per_s=rate,
        )
    elif verdict is Verdict.NORMAL:
        manager.resolve_condition(
            AlertKind.BACKLOG_GROWTH,
            BACKLOG_KEY,
            "backlog drains again",
            backlog=backlog,
            growth_per_s=rate,
        )


def judge_workers(manager: AlertManager, lost: set[str]) -> None:
    """Workers of the shared store that stopped beating: one alert each, resolved
    once the worker beats again or leaves the registry."""
    for worker_id in sorted(lost - manager.lost_workers):
        manager.worker_lost(worker_id, "no heartbeat within its lease")
    for worker_id in sorted(manager.lost_workers - lost):
        manager.worker_back(worker_id)
    manager.lost_workers = lost
