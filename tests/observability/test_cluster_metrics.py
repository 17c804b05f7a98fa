"""Load figures for the whole cluster: each worker sends its own with its registry
heartbeat, and any scheduler on the store adds them up; lost workers raise alerts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from asched import Alert, AlertKind, Scheduler
from asched.observability.insight import cluster_figures

T0 = 1_700_000_000.0


def _record(worker_id: str, beat_s: float, running: int, **figures: Any) -> dict[str, Any]:
    return {
        "id": worker_id,
        "heartbeat_s": beat_s,
        "lease_s": 30.0,
        "running": running,
        "figures": figures,
    }


def test_live_workers_figures_are_added_up_and_lost_ones_only_named() -> None:
    records = [
        _record("a", T0 - 5, 2, completed_1h=30, failed_1h=10, tasks_per_minute=4,
                retries_1h=1, ready=3, lateness_p99_ms=12.5),
        _record("b", T0 - 1, 1, completed_1h=50, failed_1h=0, tasks_per_minute=6,
                retries_1h=0, ready=0, lateness_p99_ms=40.0),
        _record("gone", T0 - 31, 7, completed_1h=999, failed_1h=999, lateness_p99_ms=9e9),
        {"id": "new", "heartbeat_s": T0, "lease_s": 30.0, "running": 0},  # no figures yet
    ]  # fmt: skip
    figures = cluster_figures(records, T0)
    assert figures["workers"] == 3 and figures["lost_workers"] == ["gone"]
    assert (figures["running"], figures["completed_1h"], figures["failed_1h"]) == (3, 80, 10)
    assert (figures["tasks_per_minute"], figures["retries_1h"], figures["ready"]) == (10, 1, 3)
    assert figures["success_rate_1h"] == 80 / 90
    assert figures["lateness_p99_ms"] == 40.0
    assert cluster_figures([], T0)["success_rate_1h"] is None


async def _eventually(check: Callable[[], Awaitable[bool]], within_s: float = 10.0) -> None:
    for _ in range(int(within_s / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time allowed")


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[list[Scheduler]]:
    made = [
        Scheduler(f"sqlite:///{tmp_path / 'bot.db'}", lease_s=0.3, strict_task_types=False)
        for _ in range(2)
    ]
    for scheduler in made:

        @scheduler.task("job")
        async def job(n: int) -> int:
            return n

    yield made
    for scheduler in made:
        await scheduler.stop(grace_s=0)


async def test_every_scheduler_on_the_store_sees_the_clusters_outcomes(
    workers: list[Scheduler],
) -> None:
    first, second = workers
    async with first, second:
        ids = [await first.schedule_task("job", {"n": n}) for n in range(5)]
        ids += [await second.schedule_task("job", {"n": n}) for n in range(3)]
        for task_id in ids:
            await first.wait_for(task_id, timeout=10)

        async def both_beat_with_all_outcomes() -> bool:
            cluster = (await second.get_system_load_metrics())["cluster"]
            return bool(cluster["workers"] == 2 and cluster["completed_1h"] == 8)

        await _eventually(both_beat_with_all_outcomes)
        mine, theirs = [await s.get_system_load_metrics() for s in (first, second)]
        assert mine["completed_1h"] + theirs["completed_1h"] == 8  # each saw its own share
        assert mine["cluster"]["completed_1h"] == 8 and mine["cluster"]["lost_workers"] == []
        assert mine["cluster"]["success_rate_1h"] == 1.0


class Recording:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def notify(self, alert: Alert) -> None:
        self.alerts.append(alert)

    def lost(self) -> list[tuple[str, bool]]:
        return [(a.key, a.resolved) for a in self.alerts if a.kind is AlertKind.WORKER_LOST]


async def test_a_worker_that_stops_beating_raises_an_alert_resolved_when_it_is_gone(
    workers: list[Scheduler],
) -> None:
    watcher = workers[0]
    notifier = Recording()
    watcher.add_notifier(notifier, tick_s=0.05, backlog_sample_s=0.1)
    async with watcher:
        now = watcher.clock.now()
        stale = {"id": "host:1:dead", "started_s": now - 60, "heartbeat_s": now - 60,
                 "running": 3, "lease_s": 1.0, "pid": 1, "host": "h", "version": "x"}  # fmt: skip
        await watcher.store.register_worker(stale)

        async def alerted() -> bool:
            return notifier.lost() == [("worker_lost:host:1:dead", False)]

        await _eventually(alerted)
        await watcher.store.remove_worker("host:1:dead")

        async def resolved() -> bool:
            return notifier.lost()[-1] == ("worker_lost:host:1:dead", True)

        await _eventually(resolved)
