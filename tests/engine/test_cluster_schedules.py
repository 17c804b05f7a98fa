"""Recurring schedules on a store shared by several schedulers (two in this
process, on one SQLite file, as two processes would share it)."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from asched import Scheduler


def _scheduler(db: Path, *, handler: bool = True) -> Scheduler:
    scheduler = Scheduler(f"sqlite:///{db}", lease_s=2.0, strict_task_types=False)
    scheduler.ran = []  # type: ignore[attr-defined]
    if handler:

        @scheduler.task("job")
        async def job() -> None:
            scheduler.ran.append(1)  # type: ignore[attr-defined]

    return scheduler


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Callable[..., Scheduler]]:
    made: list[Scheduler] = []

    def make(**options: bool) -> Scheduler:
        made.append(_scheduler(tmp_path / "bot.db", **options))
        return made[-1]

    yield make
    for scheduler in made:
        await scheduler.stop(grace_s=0)


async def _until(check: Callable[[], Any], timeout_s: float = 5.0) -> None:
    """Wait (in real time, bounded) until ``check()`` -- a value or an awaitable -- is true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not true within {timeout_s}s")


async def test_declaring_a_schedule_again_keeps_its_stored_phase(
    pair: Callable[..., Scheduler],
) -> None:
    first, second = pair(), pair()
    await first.start()
    await first.schedule_recurring("job", interval=10, schedule_id="stats")
    await asyncio.sleep(0.3)  # the second process's "now" is later
    await second.start()
    await second.schedule_recurring("job", interval=10, schedule_id="stats")
    one, two = await first.get_schedule("stats"), await second.get_schedule("stats")
    assert one["next_fire"] == two["next_fire"]
    (record,) = await second.store.load_schedules()
    assert record["revision"] == 1  # nothing was redefined
    assert record["trigger"]["start"] == one["trigger"]["start"]


async def test_changes_made_in_one_scheduler_reach_the_other(
    pair: Callable[..., Scheduler],
) -> None:
    maker, worker = pair(handler=False), pair()
    await worker.start()
    await maker.start()

    async def seen() -> dict[str, Any] | None:
        found = [s for s in await worker.list_schedules() if s["id"] == "report"]
        return found[0] if found else None

    async def until_seen(check: Callable[[dict[str, Any] | None], bool]) -> None:
        async def now_seen() -> bool:
            return check(await seen())

        await _until(now_seen, 3)

    sid = await maker.schedule_recurring("job", cron="@hourly", schedule_id="report")
    await until_seen(lambda s: s is not None and s["trigger"]["expression"] == "@hourly")
    await maker.schedule_recurring("job", cron="@daily", schedule_id="report")
    await until_seen(lambda s: s is not None and s["trigger"]["expression"] == "@daily")
    assert await maker.pause_schedule(sid)
    await until_seen(lambda s: s is not None and s["state"] == "paused")
    assert await maker.resume_schedule(sid)
    await until_seen(lambda s: s is not None and s["state"] == "active")
    assert await maker.remove_schedule(sid)
    await until_seen(lambda s: s is None)
    await asyncio.sleep(0.6)  # a late progress write of either brings nothing back
    assert await worker.store.load_schedules() == []


async def test_max_instances_holds_across_schedulers(tmp_path: Path) -> None:
    # Both declare the schedule and both run it: whichever stores a fire's task,
    # neither starts a second instance while one runs anywhere.
    runs: list[tuple[float, float]] = []
    loop = asyncio.get_running_loop()

    def make() -> Scheduler:
        scheduler = Scheduler(f"sqlite:///{tmp_path / 'bot.db'}", lease_s=2.0)

        @scheduler.task("slow")
        async def slow() -> None:
            began = loop.time()
            await asyncio.sleep(1.6)
            runs.append((began, loop.time()))

        return scheduler

    one, two = make(), make()
    async with one, two:
        for scheduler in (one, two):
            await scheduler.schedule_recurring(
                "slow", cron="* * * * * *", schedule_id="tick", max_instances=1
            )
        await _until(lambda: len(runs) >= 3, 12)
    runs.sort()
    for (_, ended), (began, _) in itertools.pairwise(runs):
        assert began >= ended - 0.05, f"two instances overlapped: {runs}"
