"""The execution forecast through the public API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from asched import Scheduler, TaskPriority, TaskValidationError
from asched.observability.forecast import render_timeline
from asched.testing import FakeClock

START = datetime(2027, 3, 1, 10, 30, tzinfo=UTC).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def scheduler(make_scheduler: Callable[..., Scheduler]) -> Scheduler:
    s = make_scheduler()

    @s.task("analytics")
    async def analytics() -> None:
        return None

    @s.task("publish")
    async def publish() -> None:
        return None

    return s


async def test_hourly_cron_gives_24_runs_in_24_hours(scheduler: Scheduler) -> None:
    async with scheduler:
        sid = await scheduler.schedule_recurring("analytics", cron="0 * * * *", timezone="UTC")
        forecast = await scheduler.get_task_execution_forecast(lookahead_hours=24)
    assert forecast["total"] == 24
    assert [b["total"] for b in forecast["buckets"]] == [1] * 24
    assert forecast["upcoming"][0]["time"] == datetime(2027, 3, 1, 11, 0, tzinfo=UTC)
    assert {u["source"] for u in forecast["upcoming"]} == {f"schedule:{sid}"}


async def test_paused_schedule_forecasts_nothing(scheduler: Scheduler) -> None:
    async with scheduler:
        sid = await scheduler.schedule_recurring("analytics", cron="0 * * * *")
        await scheduler.pause_schedule(sid)
        forecast = await scheduler.get_task_execution_forecast(24)
    assert forecast["total"] == 0
    assert render_timeline(forecast) == "nothing expected to run in the window"


async def test_one_off_tasks_land_in_their_bucket_by_type_and_priority(
    scheduler: Scheduler, clock: FakeClock
) -> None:
    async with scheduler:
        for hours, kind, priority in [
            (1, "publish", TaskPriority.HIGH),
            (1, "publish", 3),
            (3, "analytics", 2),
            (30, "publish", 2),
        ]:
            await scheduler.schedule_task(kind, delay=hours * 3600, priority=priority)
        forecast = await scheduler.get_task_execution_forecast(24)
        only_publish = await scheduler.get_task_execution_forecast(24, task_type="publish")
    starts = [b["start"].hour for b in forecast["buckets"]]
    assert starts == [11, 13]
    first = forecast["buckets"][0]
    assert first["by_type"] == {"publish": 2}
    assert first["by_priority"] == {"HIGH": 1, "LOW": 1}
    assert forecast["total"] == 3  # the one 30 h ahead is outside the window
    assert only_publish["total"] == 2
    assert [u["source"] for u in forecast["upcoming"]] == ["one-off"] * 3
    assert "publish:2" in render_timeline(forecast)


async def test_expected_busy_time_uses_measured_durations(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    finish = asyncio.Event()

    @s.task("render")
    async def render() -> None:
        await finish.wait()

    async with s:
        done = await s.schedule_task("render")
        await clock.advance(30)  # the first render takes 30 virtual seconds
        finish.set()
        await s.wait_for(done, timeout=1)
        for _ in range(3):
            await s.schedule_task("render", delay=600)
        forecast = await s.get_task_execution_forecast(2, bucket="minute")
    assert forecast["bucket_s"] == 60
    assert [b["total"] for b in forecast["buckets"]] == [3]
    assert forecast["buckets"][0]["expected_busy_s"] == pytest.approx(90.0)


async def test_bad_forecast_arguments(scheduler: Scheduler) -> None:
    async with scheduler:
        with pytest.raises(TaskValidationError, match="lookahead_hours"):
            await scheduler.get_task_execution_forecast(0)
        with pytest.raises(TaskValidationError, match="bucket"):
            await scheduler.get_task_execution_forecast(1, bucket="fortnight")


async def test_window_picks_the_least_busy_hour_and_records_why(scheduler: Scheduler) -> None:
    async with scheduler:
        base = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
        for _ in range(3):  # 12:00-13:00 is busy
            await scheduler.schedule_task("publish", execution_time=base)
        tid = await scheduler.schedule_task(
            "publish",
            window=(base, base.replace(hour=14)),
        )
        task = await scheduler.get_task(tid)
    assert task.scheduled_for.hour == 13
    entry = task.metadata.audit_trail[-1]
    assert entry["action"] == "slot_chosen"
    assert "least busy slot" in entry["reason"]


async def test_window_with_an_engagement_scorer(scheduler: Scheduler) -> None:
    def engagement(at: datetime, task_type: str, data: object) -> float:
        return 1.0 if at.hour == 18 else 0.1  # this channel's audience peaks at 18:00

    async with scheduler:
        day = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
        tid = await scheduler.schedule_task(
            "publish", window=(day, day.replace(hour=22)), slot_strategy=engagement
        )
        task = await scheduler.get_task(tid)
        with pytest.raises(TaskValidationError, match="window"):
            await scheduler.schedule_task("publish", window=(day,))
        with pytest.raises(TaskValidationError, match="not both"):
            await scheduler.schedule_task("publish", delay=5, window=(day, day))
    assert task.scheduled_for.hour == 18
    assert "engagement" in task.metadata.audit_trail[-1]["reason"]
