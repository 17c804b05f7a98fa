"""Dependencies, concurrency limits and idempotency, through the public API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from asched import DependencyError, Scheduler, TaskCancelledError, TaskLifecycle
from asched.testing import FakeClock

L = TaskLifecycle


async def test_dependent_waits_paused_then_runs_after_all_complete(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    order: list[str] = []

    @s.task("step")
    async def step(name: str) -> None:
        order.append(name)

    async with s:
        render = await s.schedule_task("step", {"name": "render"}, delay=10)
        thumb = await s.schedule_task("step", {"name": "thumb"}, delay=20)
        upload = await s.schedule_task("step", {"name": "upload"}, dependencies=[render, thumb])
        await clock.advance(0)
        assert await s.get_task_status(upload) is L.PAUSED
        await clock.advance(10)
        assert await s.get_task_status(upload) is L.PAUSED
        await clock.advance(10)
        await s.wait_for(upload, timeout=1)
    assert order == ["render", "thumb", "upload"]


async def test_dependent_is_cancelled_naming_the_failed_dependency(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()

    @s.task("render", max_retries=0)
    async def render() -> None:
        raise ValueError("codec missing")

    @s.task("upload")
    async def upload() -> None:
        raise AssertionError("must not run")

    async with s:
        r = await s.schedule_task("render")
        u = await s.schedule_task("upload", dependencies=[r])
        after = await s.schedule_task("upload", dependencies=[u])
        await clock.advance(0)
        with pytest.raises(TaskCancelledError, match=f"dependency {r} ended FAILED"):
            await s.wait_for(u, timeout=1)
        assert await s.get_task_status(after) is L.CANCELLED


async def test_depending_on_an_already_failed_task_cancels_at_once(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()

    @s.task("job")
    async def job() -> None:
        return None

    async with s:
        gone = await s.schedule_task("job", delay=5)
        await s.cancel_task(gone)
        tid = await s.schedule_task("job", dependencies=[gone])
        assert await s.get_task_status(tid) is L.CANCELLED
        assert (await s.get_task(tid)).history[-1].reason == f"dependency {gone} did not complete"


async def test_unknown_dependency_and_cycles_are_rejected_and_store_nothing(
    make_scheduler: Callable[..., Scheduler],
) -> None:
    s = make_scheduler()

    @s.task("job")
    async def job() -> None:
        return None

    async with s:
        with pytest.raises(DependencyError) as unknown:
            await s.schedule_task("job", dependencies=["nope"])
        assert unknown.value.field == "dependencies" and unknown.value.value == "nope"
        with pytest.raises(DependencyError, match="cycle"):
            await s.schedule_many(
                [
                    {"task_type": "job", "task_id": "a", "dependencies": ["b"]},
                    {"task_type": "job", "task_id": "b", "dependencies": ["c"]},
                    {"task_type": "job", "task_id": "c", "dependencies": ["a"]},
                ]
            )
        with pytest.raises(DependencyError, match="itself"):
            await s.schedule_task("job", task_id="self", dependencies=["self"])
        assert await s.list_tasks() == []


async def test_schedule_many_links_tasks_within_the_batch(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    order: list[str] = []

    @s.task("step")
    async def step(name: str) -> None:
        order.append(name)

    async with s:
        ids = await s.schedule_many(
            [
                {
                    "task_type": "step",
                    "task_data": {"name": "b"},
                    "task_id": "b",
                    "dependencies": ["a"],
                },
                {"task_type": "step", "task_data": {"name": "a"}, "task_id": "a", "delay": 1},
            ]
        )
        assert ids == ["b", "a"]
        await clock.advance(1)
        await s.wait_for("b", timeout=1)
    assert order == ["a", "b"]


async def test_key_limit_allows_one_upload_per_channel_at_a_time(
    make_scheduler: Callable[..., Scheduler],
) -> None:
    s = make_scheduler()
    running: dict[str, int] = {}
    peak: dict[str, int] = {}

    @s.task("upload")
    async def upload(channel: str) -> None:
        running[channel] = running.get(channel, 0) + 1
        peak[channel] = max(peak.get(channel, 0), running[channel])
        await asyncio.sleep(0.001)
        running[channel] -= 1

    async with s:
        ids = [
            await s.schedule_task("upload", {"channel": ch}, concurrency_key=ch)
            for _ in range(5)
            for ch in ("c1", "c2", "c3")
        ]
        for tid in ids:
            await s.wait_for(tid, timeout=5)
    assert peak == {"c1": 1, "c2": 1, "c3": 1}


async def test_key_and_type_limits_hold_under_real_concurrency(
    make_scheduler: Callable[..., Scheduler],
) -> None:
    s = make_scheduler(max_concurrency=50)
    s.limit_key("shared", 3)
    current = {"render": 0, "shared": 0}
    peak = {"render": 0, "shared": 0}

    @s.task("render", concurrency=2)
    async def render() -> None:
        current["render"] += 1
        peak["render"] = max(peak["render"], current["render"])
        await asyncio.sleep(0.001)
        current["render"] -= 1

    @s.task("fetch")
    async def fetch() -> None:
        current["shared"] += 1
        peak["shared"] = max(peak["shared"], current["shared"])
        await asyncio.sleep(0.001)
        current["shared"] -= 1

    async with s:
        ids = [await s.schedule_task("render") for _ in range(10)]
        ids += [await s.schedule_task("fetch", concurrency_key="shared") for _ in range(10)]
        for tid in ids:
            await s.wait_for(tid, timeout=5)
    assert peak == {"render": 2, "shared": 3}


async def test_global_limit_bounds_running_tasks(make_scheduler: Callable[..., Scheduler]) -> None:
    s = make_scheduler(max_concurrency=4)
    current = peak = 0

    @s.task("job")
    async def job() -> None:
        nonlocal current, peak
        current += 1
        peak = max(peak, current)
        await asyncio.sleep(0.001)
        current -= 1

    async with s:
        ids = [await s.schedule_task("job") for _ in range(40)]
        for tid in ids:
            await s.wait_for(tid, timeout=5)
    assert peak == 4


async def test_a_full_key_does_not_hold_up_other_work(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler(max_concurrency=2)
    release = asyncio.Event()

    @s.task("upload")
    async def upload() -> None:
        await release.wait()

    async with s:
        busy = [await s.schedule_task("upload", concurrency_key="c1") for _ in range(5)]
        other = await s.schedule_task("upload", concurrency_key="c2")
        await clock.advance(0)
        assert await s.get_task_status(other) is L.RUNNING
        assert [await s.get_task_status(t) for t in busy].count(L.RUNNING) == 1
        release.set()
        for tid in busy:
            await s.wait_for(tid, timeout=5)


async def test_idempotency_key_returns_the_first_id(
    make_scheduler: Callable[..., Scheduler],
) -> None:
    s = make_scheduler()

    @s.task("job")
    async def job() -> None:
        return None

    async with s:
        first = await s.schedule_task("job", delay=60, idempotency_key="video-42")
        second = await s.schedule_task("job", delay=60, idempotency_key="video-42")
        assert first == second
        assert len(await s.list_tasks()) == 1


async def test_a_task_blocked_twice_does_not_hold_up_the_next_one(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler()
    render_done = asyncio.Event()
    first_upload_done = asyncio.Event()

    @s.task("render")
    async def render() -> None:
        await render_done.wait()

    @s.task("upload", concurrency=1)
    async def upload(n: int) -> int:
        if n == 1:
            await first_upload_done.wait()
        return n

    async with s:
        busy_channel = await s.schedule_task("render", concurrency_key="c1")
        first = await s.schedule_task("upload", {"n": 1}, concurrency_key="c9")
        await clock.advance(0)
        blocked_twice = await s.schedule_task("upload", {"n": 2}, concurrency_key="c1")
        other = await s.schedule_task("upload", {"n": 3}, concurrency_key="c2")
        await clock.advance(0)
        first_upload_done.set()
        await s.wait_for(first, timeout=5)
        # The upload slot goes to the c2 upload, not to the one still waiting for c1.
        assert await s.wait_for(other, timeout=5) == 3
        assert await s.get_task_status(blocked_twice) is L.SCHEDULED
        render_done.set()
        await s.wait_for(busy_channel, timeout=5)
        assert await s.wait_for(blocked_twice, timeout=5) == 2
