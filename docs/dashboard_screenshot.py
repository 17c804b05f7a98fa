"""Regenerate docs/dashboard.png: a small content bot running with its dashboard.

python docs/dashboard_screenshot.py        # needs chromium and Playwright
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import async_playwright

from asched import Scheduler, TaskPriority
from asched.dashboard.serve import BesideServer

OUT = Path(__file__).with_name("dashboard.png")
CHANNELS = [f"channel-{i}" for i in range(1, 6)]


def build(url: str) -> Scheduler:
    s = Scheduler(store=url, max_concurrency=8)
    rng = random.Random(3)

    @s.task("render_video")
    async def render_video(channel_id: str) -> dict[str, str]:
        await asyncio.sleep(rng.uniform(5, 40))
        return {"video": f"{channel_id}.mp4"}

    @s.task("thumbnail")
    async def thumbnail(channel_id: str) -> str:
        await asyncio.sleep(rng.uniform(0.1, 0.6))
        return f"{channel_id}.png"

    @s.task("upload", breaker="youtube", max_retries=1)
    async def upload(channel_id: str) -> None:
        await asyncio.sleep(0.05)
        raise ConnectionError("youtube: 503 Service Unavailable")

    @s.task("analytics")
    async def analytics() -> None:
        await asyncio.sleep(0.2)

    s.configure_breaker("youtube", failure_threshold=3, recovery_s=600)
    for channel in CHANNELS:
        s.limit_key(channel, 1)
    return s


async def scenario(s: Scheduler) -> None:
    now = datetime.now(UTC)
    for i, channel in enumerate(CHANNELS):
        await s.schedule_task("render_video", {"channel_id": channel}, concurrency_key=channel)
        for hour in range(0, 24, 2):
            at = now + timedelta(hours=hour, minutes=7 * i)
            await s.schedule_task(
                "render_video",
                {"channel_id": channel},
                execution_time=at,
                priority=TaskPriority.HIGH if hour % 6 == 0 else TaskPriority.MEDIUM,
                concurrency_key=channel,
                tags=["daily"],
            )
            await s.schedule_task(
                "thumbnail",
                {"channel_id": channel},
                execution_time=at + timedelta(minutes=30),
                priority=TaskPriority.LOW,
            )
    for i in range(40):
        await s.schedule_task("thumbnail", {"channel_id": CHANNELS[i % 5]})
    for channel in CHANNELS[:4]:
        await s.schedule_task("upload", {"channel_id": channel})
    await s.schedule_recurring("analytics", cron="0 9 * * *", schedule_id="morning-report")
    await s.schedule_recurring("analytics", interval=3 * 3600, schedule_id="every-3h-stats")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        s = build(f"sqlite:///{tmp}/bot.db")
        async with s:
            board = BesideServer(s, 8917, "127.0.0.1", None)
            board.server.config.app.state.dashboard.history.interval_s = 1.0
            await board.start()
            await scenario(s)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--no-sandbox"]
                )
                page = await browser.new_page(viewport={"width": 1400, "height": 1100})
                await page.goto("http://127.0.0.1:8917/")
                await asyncio.sleep(12)  # a few samples for the charts
                await page.screenshot(path=str(OUT), full_page=False)
                await browser.close()
            await board.stop()
            await s.stop(grace_s=0)
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
