"""Load metrics on a virtual clock: exact counts, and windows that roll off."""

from __future__ import annotations

import asyncio

import pytest

from asched import Scheduler, TaskPriority
from asched.testing import FakeClock


def _scheduler(clock: FakeClock) -> Scheduler:
    s = Scheduler(clock=clock)

    @s.task("work", max_retries=1, backoff_factor=1.0)
    async def work(ok: bool, seconds: float = 0.0) -> None:
        if seconds:
            await clock_sleep(clock, seconds)
        if not ok:
            raise RuntimeError("boom")

    return s


async def clock_sleep(clock: FakeClock, seconds: float) -> None:
    done = asyncio.get_running_loop().create_future()
    clock.call_at(clock.now() + seconds, lambda: done.set_result(None))
    await done


async def test_known_outcomes_give_exact_figures_and_roll_off() -> None:
    clock = FakeClock()
    s = _scheduler(clock)
    async with s:
        for _ in range(6):
            await s.schedule_task("work", {"ok": True, "seconds": 2.0}, delay=3.0)
        await s.schedule_task("work", {"ok": False}, priority=TaskPriority.HIGH)
        await clock.advance(10)  # the failing one ran twice (one retry), the rest once
        m = await s.get_system_load_metrics()
        assert (m["completed_1h"], m["failed_1h"], m["retries_1h"]) == (6, 2, 1)
        assert m["tasks_per_minute"] == 8
        assert m["success_rate_1h"] == pytest.approx(6 / 8)
        assert m["duration_s_by_type"]["work"] == {"p50": 2.0, "p95": 2.0}
        assert m["lateness_ms"]["p99"] == 0.0
        await clock.advance(61)
        m = await s.get_system_load_metrics()
        assert m["tasks_per_minute"] == 0 and m["completed_1h"] == 6
        await clock.advance(3600)
        m = await s.get_system_load_metrics()
        assert (m["completed_1h"], m["failed_1h"], m["retries_1h"]) == (0, 0, 0)
        assert m["success_rate_1h"] is None


async def test_depths_by_priority_state_and_key_come_from_held_tasks() -> None:
    clock = FakeClock()
    s = _scheduler(clock)
    async with s:
        low = {"priority": "LOW", "concurrency_key": "c1"}
        await s.schedule_task("work", {"ok": True}, delay=60, **low)
        await s.schedule_task("work", {"ok": True}, delay=60, concurrency_key="c1")
        await s.schedule_task("work", {"ok": True, "seconds": 30}, concurrency_key="c2")
        await clock.advance(1)
        m = await s.get_system_load_metrics()
        assert m["queue_by_priority"]["LOW"] == 1 and m["queue_by_priority"]["MEDIUM"] == 1
        assert m["by_state"]["RUNNING"] == 1 and m["by_state"]["SCHEDULED"] == 2
        assert m["by_concurrency_key"] == {
            "c1": {"running": 0, "waiting": 2},
            "c2": {"running": 1, "waiting": 0},
        }
        assert m["executors"]["async"]["running"] == 1
        await clock.advance(60)  # let the running one finish before the drain
