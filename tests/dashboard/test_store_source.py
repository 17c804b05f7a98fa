"""StoreSource's shortcuts agree with the slow paths they replace."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dashboard_helpers import Populated, register

from asched import Scheduler
from asched.dashboard.queries import GenericReader, TaskQuery
from asched.dashboard.store_source import StoreSource
from asched.engine.recurring import Schedule
from asched.model import TaskLifecycle
from asched.observability.forecast import build_forecast
from asched.stores import open_store


@pytest.fixture
async def source(populated: Populated) -> AsyncIterator[StoreSource]:
    s = StoreSource(open_store(populated.url))
    await s.start()
    yield s
    await s.stop()


@pytest.mark.parametrize("task_type", [None, "render_video"])
@pytest.mark.parametrize(("hours", "bucket"), [(24, "hour"), (3, "minute"), (72, "day")])
async def test_store_forecast_matches_the_full_forecast(
    source: StoreSource, task_type: str | None, hours: float, bucket: str
) -> None:
    now = time.time()
    source.now = lambda: now  # type: ignore[method-assign]
    got = await source.forecast(hours, bucket, task_type)
    schedules = [Schedule.from_record(r) for r in await source.store.load_schedules()]
    tasks = await source.store.load_unfinished()
    seconds = {"minute": 60, "hour": 3600, "day": 86400}[bucket]
    want = build_forecast(
        now, hours * 3600, seconds, tasks, schedules, {}, task_type=task_type, upcoming_limit=50
    )
    assert got["total"] == want["total"] > 0
    assert got["buckets"] == want["buckets"]
    assert [u["id"] for u in got["upcoming"]] == [u["id"] for u in want["upcoming"]]


async def test_sqlite_reader_agrees_with_the_generic_reader(source: StoreSource) -> None:
    generic = GenericReader(source.store)
    now = time.time()
    fast, slow = await source.reader.counts(now), await generic.counts(now)
    assert fast.as_dict() == slow.as_dict()
    for query in (
        TaskQuery(),
        TaskQuery(state=TaskLifecycle.QUEUED, limit=3, offset=2),
        TaskQuery(task_type="render_video", order="due_desc"),
        TaskQuery(key="channel-9"),
        TaskQuery(tag="weekly"),
    ):
        a, b = await source.reader.page(query), await generic.page(query)
        assert [t.id for t in a.tasks] == [t.id for t in b.tasks], query
        assert a.has_more == b.has_more


async def _finish_tasks(url: str, n: int) -> None:
    scheduler = Scheduler(store=url)
    register(scheduler)
    async with scheduler:
        ids = [await scheduler.schedule_task("render_video", {"i": i}) for i in range(n)]
        for tid in ids:
            with contextlib.suppress(Exception):
                await scheduler.wait_for(tid, timeout=10)


async def test_throughput_comes_from_count_changes(
    source: StoreSource, populated: Populated
) -> None:
    clock = [1000.0]
    source.now = lambda: clock[0]  # type: ignore[method-assign]
    first: dict[str, Any] = await source.metrics()
    assert first["tasks_per_minute"] is None  # the samples do not reach back a minute yet
    assert (first["completed_1h"], first["failed_1h"]) == (0, 0)
    await _finish_tasks(populated.url, 3)
    clock[0] += 60
    later = await source.metrics()
    assert later["tasks_per_minute"] == 3
    assert (later["completed_1h"], later["failed_1h"], later["success_rate_1h"]) == (3, 0, 1.0)
    clock[0] += 3600  # both samples roll out of the hour: nothing is known of it
    rolled = await source.metrics()
    assert (rolled["completed_1h"], rolled["tasks_per_minute"]) == (0, None)
    clock[0] += 60
    quiet = await source.metrics()
    assert (quiet["completed_1h"], quiet["tasks_per_minute"], quiet["success_rate_1h"]) == (
        0,
        0,
        None,
    )
