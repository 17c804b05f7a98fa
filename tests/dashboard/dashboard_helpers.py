"""Shared by the dashboard tests: a populated SQLite store."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asched import Scheduler, TaskPriority

XSS_TYPE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


@dataclass
class Populated:
    """A SQLite store with tasks of several types, states and keys, and a schedule."""

    url: str
    pending: list[str] = field(default_factory=list)
    completed: str = ""
    failed: str = ""
    tagged: str = ""
    keyed: str = ""
    xss: str = ""
    schedule_id: str = ""


def register(scheduler: Scheduler) -> None:
    async def render(**data: Any) -> dict[str, Any]:
        return {"rendered": data}

    async def upload(**data: Any) -> None:
        raise RuntimeError("upload refused")

    async def noop(**data: Any) -> None:
        return None

    scheduler.register("render_video", render)
    scheduler.register("upload", upload, max_retries=0)
    scheduler.register("analytics", noop)
    scheduler.register(XSS_TYPE, noop)


async def populate(url: str) -> Populated:
    made = Populated(url)
    scheduler = Scheduler(store=url)
    register(scheduler)
    later = datetime.now(UTC) + timedelta(hours=2)
    async with scheduler:
        made.completed = await scheduler.schedule_task("render_video", {"channel_id": "c0"})
        made.failed = await scheduler.schedule_task("upload", {"channel_id": "c0"})
        for tid in (made.completed, made.failed):
            with contextlib.suppress(Exception):  # the upload fails by design
                await scheduler.wait_for(tid, timeout=10)
        for i in range(6):
            made.pending.append(
                await scheduler.schedule_task(
                    "render_video",
                    {"channel_id": f"c{i}", "theme": "tech"},
                    execution_time=later + timedelta(minutes=i),
                    priority=TaskPriority.HIGH if i % 2 else TaskPriority.LOW,
                )
            )
        made.keyed = await scheduler.schedule_task(
            "upload", {"channel_id": "c9"}, execution_time=later, concurrency_key="channel-9"
        )
        made.tagged = await scheduler.schedule_task(
            "analytics", {}, execution_time=later, tags=["weekly", "<b>bold</b>"]
        )
        made.xss = await scheduler.schedule_task(
            XSS_TYPE, {"note": "<script>alert(1)</script>"}, execution_time=later
        )
        made.schedule_id = await scheduler.schedule_recurring(
            "analytics", cron="0 9 * * *", schedule_id="daily-analytics"
        )
    return made
