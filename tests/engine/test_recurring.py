"""Recurring schedules through the public API, on the virtual clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from asched import ScheduleNotFoundError, Scheduler, TaskLifecycle, TaskValidationError
from asched.stores import MemoryStore
from asched.testing import FakeClock

# 2027-01-04 is a Monday; 08:00 UTC.
MONDAY_8AM = datetime(2027, 1, 4, 8, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY_8AM)


def recorder(s: Scheduler, fires: list[float], clock: FakeClock) -> None:
    @s.task("analytics")
    async def analytics(channel: str = "c1") -> None:
        fires.append(clock.now())


async def test_cron_fires_each_tick_as_an_ordinary_task(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    fires: list[float] = []
    recorder(s, fires, clock)
    async with s:
        sid = await s.schedule_recurring(
            "analytics", {"channel": "c1"}, cron="0 9 * * MON-FRI", timezone="UTC"
        )
        info = await s.get_schedule(sid)
        assert info["next_fire"] == datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
        assert info["state"] == "active"
        await clock.advance(5 * 86400)  # Monday 08:00 → Saturday 08:00
        tasks = await s.list_tasks(status=TaskLifecycle.COMPLETED)
    assert [datetime.fromtimestamp(f, UTC).day for f in fires] == [4, 5, 6, 7, 8]
    assert all(datetime.fromtimestamp(f, UTC).hour == 9 for f in fires)
    assert sorted(t.id for t in tasks) == [f"{sid}@{round(f * 1000)}" for f in fires]


async def test_interval_schedule_and_pause_resume_remove(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    fires: list[float] = []
    recorder(s, fires, clock)
    async with s:
        sid = await s.schedule_recurring("analytics", interval=60)
        await clock.advance(180)
        assert len(fires) == 3
        assert await s.pause_schedule(sid) is True
        assert (await s.get_schedule(sid))["state"] == "paused"
        await clock.advance(600)
        assert len(fires) == 3
        assert await s.resume_schedule(sid) is True
        await clock.advance(60)
        assert len(fires) == 4  # fires missed while paused are not caught up
        assert await s.remove_schedule(sid) is True
        await clock.advance(600)
        assert len(fires) == 4
        with pytest.raises(ScheduleNotFoundError):
            await s.get_schedule(sid)


async def test_same_schedule_id_twice_is_idempotent(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    recorder(s, [], clock)
    async with s:
        first = await s.schedule_recurring("analytics", cron="@hourly", schedule_id="stats")
        again = await s.schedule_recurring("analytics", cron="@hourly", schedule_id="stats")
        assert first == again == "stats"
        assert len(await s.list_schedules()) == 1


async def test_missed_fires_within_grace_coalesce_into_one_run(clock: FakeClock) -> None:
    store = MemoryStore()
    fires: list[float] = []

    def build() -> Scheduler:
        s = Scheduler(store, clock=clock)
        recorder(s, fires, clock)
        return s

    first = build()
    await first.start()
    await first.schedule_recurring(
        "analytics", cron="*/10 * * * *", misfire_grace=3600, schedule_id="every10"
    )
    await first.stop()
    await clock.advance(45 * 60)  # down for 45 minutes: four fires missed
    second = build()
    async with second:
        await clock.advance(0)
        info = await second.get_schedule("every10")
    assert len(fires) == 1  # one run for the four missed fires
    assert info["skipped"]["coalesced"] == 3
    assert info["fired"] == 1


async def test_missed_fires_without_coalesce_each_run_and_late_ones_are_skipped(
    clock: FakeClock,
) -> None:
    store = MemoryStore()
    fires: list[float] = []

    def build() -> Scheduler:
        s = Scheduler(store, clock=clock, key_concurrency=100)
        recorder(s, fires, clock)
        return s

    first = build()
    await first.start()
    await first.schedule_recurring(
        "analytics",
        cron="*/10 * * * *",
        misfire_grace=1200,
        coalesce=False,
        max_instances=10,
        schedule_id="every10",
    )
    await first.stop()
    await clock.advance(45 * 60)  # fires at 8:10, 8:20, 8:30, 8:40 missed; now 8:45
    second = build()
    async with second:
        await clock.advance(0)
        info = await second.get_schedule("every10")
    assert len(fires) == 2  # 8:30 and 8:40 are within 20 minutes
    assert info["skipped"]["late"] == 2


async def test_max_instances_skips_and_records(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    release = asyncio.Event()

    @s.task("export")
    async def export() -> None:
        await release.wait()

    async with s:
        sid = await s.schedule_recurring("export", interval=60, max_instances=1)
        await clock.advance(60)
        await clock.advance(60)
        await clock.advance(60)
        info = await s.get_schedule(sid)
        assert info["fired"] == 1
        assert info["skipped"]["max_instances"] == 2
        release.set()
        await clock.advance(60)
        assert (await s.get_schedule(sid))["fired"] == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cron": "0 0 30 2 *"}, "cron"),
        ({"cron": "not a cron"}, "cron"),
        ({"cron": "@hourly", "interval": 5}, "cron"),
        ({}, "cron"),
        ({"interval": -5}, "interval"),
        ({"cron": "@hourly", "timezone": "Mars/Olympus"}, "timezone"),
        ({"cron": "@hourly", "max_instances": 0}, "max_instances"),
        ({"cron": "@hourly", "priority": 9}, "priority"),
        ({"cron": "@hourly", "schedule_id": "a@b"}, "schedule_id"),
        ({"cron": "@hourly", "dependencies": ["x"]}, "dependencies"),
    ],
)
async def test_bad_schedules_are_rejected_naming_the_field(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock, kwargs: dict, field: str
) -> None:
    s = make_scheduler()
    recorder(s, [], clock)
    async with s:
        with pytest.raises(TaskValidationError) as raised:
            await s.schedule_recurring("analytics", **kwargs)
        assert raised.value.field == field
        assert await s.list_schedules() == []
