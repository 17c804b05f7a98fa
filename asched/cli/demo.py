"""``asched demo``: a small content-bot day, compressed into a few seconds."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from typing import Any

from asched.cli.eventloop import new_event_loop
from asched.clock import wall_now
from asched.errors import AschedError
from asched.model import Task, TaskPriority
from asched.scheduler import Scheduler

#: The demo's own database, in the current directory; recreated on every run.
DEMO_STORE = "sqlite:///asched-demo.db"
_DEMO_FILE = "asched-demo.db"


def build_scheduler(store: str) -> tuple[Scheduler, dict[str, int]]:
    scheduler = Scheduler(store, max_concurrency=8, default_backoff_factor=1.0)
    flaky_attempts: dict[str, int] = {}
    rng = random.Random(7)

    @scheduler.task("render_video")
    async def render_video(channel_id: str, theme: str) -> dict[str, Any]:
        await asyncio.sleep(0.05 + rng.random() * 0.1)
        return {"channel_id": channel_id, "file": f"{channel_id}-{theme}.mp4"}

    @scheduler.task("upload", max_retries=3)
    async def upload(channel_id: str, flaky: bool = False) -> str:
        await asyncio.sleep(0.05)
        if flaky:
            flaky_attempts[channel_id] = flaky_attempts.get(channel_id, 0) + 1
            if flaky_attempts[channel_id] < 3:
                raise ConnectionError("upload API returned 503")
        return f"https://videos.example/{channel_id}"

    @scheduler.task("trend_response")
    async def trend_response(topic: str) -> str:
        await asyncio.sleep(0.02)
        return f"short about {topic} queued"

    @scheduler.task("analytics", executor="thread")
    def analytics(channel_id: str) -> dict[str, float]:
        time.sleep(0.02)
        return {"channel_id_hash": float(hash(channel_id) % 100)}

    @scheduler.task("long_render")
    async def long_render(channel_id: str) -> None:
        await asyncio.sleep(60)

    @scheduler.task("cleanup")
    async def cleanup() -> None:
        return None

    return scheduler, flaky_attempts


async def scenario(store: str, channels: int) -> tuple[list[Task], float]:
    scheduler, _ = build_scheduler(store)
    started = wall_now()
    async with scheduler:
        ids: list[str] = []
        for n in range(1, channels + 1):
            channel = f"channel{n}"
            render = await scheduler.schedule_task(
                "render_video",
                {"channel_id": channel, "theme": "tech_news"},
                priority=TaskPriority.MEDIUM,
                concurrency_key=f"render:{channel}",
            )
            upload = await scheduler.schedule_task(
                "upload",
                {"channel_id": channel, "flaky": n == 2},
                priority=TaskPriority.HIGH,
                dependencies=[render],
                concurrency_key=f"upload:{channel}",
            )
            stats = await scheduler.schedule_task(
                "analytics", {"channel_id": channel}, priority=TaskPriority.LOW, delay=0.3
            )
            ids += [render, upload, stats]
        ids.append(
            await scheduler.schedule_task(
                "trend_response", {"topic": "new phone launch"}, priority=TaskPriority.CRITICAL
            )
        )
        later = await scheduler.schedule_task(
            "cleanup", priority=TaskPriority.BACKGROUND, delay=3600
        )
        stuck = await scheduler.schedule_task("long_render", {"channel_id": "channel1"})
        ids += [later, stuck]
        await asyncio.sleep(0.2)
        await scheduler.cancel_task(later, "cleanup moved to tonight's window")
        await scheduler.cancel_task(stuck, "render took too long; cancelled while running")
        for task_id in ids:
            with contextlib.suppress(AschedError):
                await scheduler.wait_for(task_id, timeout=30)
        tasks = [await scheduler.get_task(task_id) for task_id in ids]
        metrics = await scheduler.get_system_load_metrics()
    print_summary(tasks, started, metrics)
    return tasks, started


def print_summary(tasks: list[Task], started: float, metrics: dict[str, Any]) -> None:
    print(
        f"{'task':<20} {'channel':<10} {'priority':<10} {'state':<10} "
        f"{'tries':>5} {'start':>8} {'end':>8}  note"
    )
    print("-" * 100)
    for task in sorted(tasks, key=lambda t: (t.started_s or 1e18, t.priority)):
        channel = task.data.get("channel_id", "-")
        begin = _ms(task.started_s, started)
        end = _ms(task.finished_s, started)
        note = task.history[-1].reason if task.history else ""
        if task.lifecycle.name == "COMPLETED" and task.retries:
            note = f"succeeded after {task.retries} retr{'y' if task.retries == 1 else 'ies'}"
        print(
            f"{task.type:<20} {channel:<10} {task.priority.name:<10} {task.lifecycle.name:<10} "
            f"{task.retries + (1 if task.started_s else 0):>5} {begin:>8} {end:>8}  {note or ''}"
        )
    print("-" * 100)
    print("times are milliseconds since the demo started; tries counts attempts")
    rate = metrics["success_rate_1h"]
    print(
        f"finished in the last minute: {metrics['tasks_per_minute']}, "
        f"attempt success rate: {'n/a' if rate is None else f'{rate:.0%}'}"
    )


def _ms(at: float | None, origin: float) -> str:
    return "-" if at is None else f"{(at - origin) * 1000:.0f}"


def reset_demo_file() -> None:
    """Delete the previous demo database (and its WAL files) so a run starts clean."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(_DEMO_FILE + suffix)


def run_demo(store: str = DEMO_STORE, channels: int = 4) -> int:
    # Only the demo's own file is ever deleted, never a store the user named.
    if store == DEMO_STORE:
        reset_demo_file()
    loop = new_event_loop(use_uvloop=True)
    try:
        loop.run_until_complete(scenario(store, channels))
    finally:
        loop.close()
    if store.startswith("sqlite:"):
        print(f"tasks kept in the store; inspect them with: asched list --store {store}")
    return 0
