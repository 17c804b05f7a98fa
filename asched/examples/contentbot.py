"""A content bot for ``asched run``: a few channels' videos, rendered, uploaded
(one upload per channel at a time, a flaky upload API behind a circuit
breaker) and announced, plus a recurring analytics job.

    asched run asched.examples.contentbot:scheduler --until-idle

Without ``--store`` this runs on the embedded default, ``sqlite:///asched.db``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from asched import RetryPolicy, Scheduler, TaskPriority

log = logging.getLogger(__name__)
CHANNELS = ("tech_news", "cooking", "travel")

scheduler = Scheduler(max_concurrency=8)
_flaky = random.Random()


@scheduler.task("render_video", timeout=60)
async def render_video(channel_id: str, theme: str) -> dict[str, str]:
    await asyncio.sleep(0.05 + _flaky.random() * 0.1)
    log.info("rendered %s video for %s", theme, channel_id)
    return {"channel_id": channel_id, "file": f"{channel_id}-{theme}.mp4"}


@scheduler.task(
    "upload",
    retry=RetryPolicy(max_retries=4, backoff_factor=2, base=0.25, jitter="equal"),
    breaker="video-platform",
)
async def upload(channel_id: str) -> str:
    await asyncio.sleep(0.05)
    if _flaky.random() < 0.3:
        raise ConnectionError("upload API returned 503")
    log.info("uploaded the video of %s", channel_id)
    return f"https://videos.example/{channel_id}"


@scheduler.task("announce", executor="thread")
def announce(channel_id: str) -> str:
    time.sleep(0.01)  # a blocking client library, run on the thread pool
    log.info("announced the new video of %s", channel_id)
    return "posted"


@scheduler.task("analytics", executor="thread")
def analytics(channel_id: str) -> dict[str, int]:
    time.sleep(0.02)
    log.info("collected analytics for %s", channel_id)
    return {"views": _flaky.randint(100, 10_000)}


async def on_start(scheduler: Scheduler) -> None:
    """Plan today's work for each channel; called by ``asched run`` after start."""
    scheduler.configure_breaker("video-platform", failure_threshold=5, recovery_s=2)
    for channel in CHANNELS:
        render = await scheduler.schedule_task(
            "render_video", {"channel_id": channel, "theme": "daily"}, priority=TaskPriority.MEDIUM
        )
        upload = await scheduler.schedule_task(
            "upload",
            {"channel_id": channel},
            priority=TaskPriority.HIGH,
            dependencies=[render],
            concurrency_key=f"upload:{channel}",
        )
        await scheduler.schedule_task("announce", {"channel_id": channel}, dependencies=[upload])
        await scheduler.schedule_task(
            "analytics", {"channel_id": channel}, priority=TaskPriority.LOW, delay=0.5
        )
    await scheduler.schedule_recurring(
        "analytics", {"channel_id": "all"}, cron="0 9 * * *", schedule_id="morning-analytics"
    )
    log.info("planned the day for %d channels", len(CHANNELS))
