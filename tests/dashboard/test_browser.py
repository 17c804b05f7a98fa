"""The page in real Chromium (Debian's ``chromium``, driven by Playwright).

Screenshots are saved under pytest's tmp_path.  Without chromium or Playwright
these tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from dashboard_helpers import XSS_TYPE, Populated, register

from asched import Scheduler, TaskLifecycle
from asched.dashboard.app import create_app
from asched.stores import open_store

CHROMIUM = os.environ.get("ASCHED_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 15_000


def _require_browser() -> Any:
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright is not installed (pip install playwright)"
    if missing is None and not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        missing = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    return sync_playwright


class ServerThread:
    """uvicorn on 127.0.0.1 and a free port, on its own thread and loop."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()))

    def __enter__(self) -> str:
        self.thread.start()
        deadline = 200
        while not self.server.started:
            assert self.thread.is_alive() and deadline > 0, "the dashboard did not start"
            deadline -= 1
            threading.Event().wait(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def token() -> str | None:
    return None


@pytest.fixture
def browser_page(
    populated: Populated, tmp_path: Path, token: str | None
) -> Iterator[tuple[Any, str]]:
    sync_playwright = _require_browser()
    with ServerThread(create_app(populated.url, token)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        try:
            yield page, url
        finally:
            page.screenshot(path=str(tmp_path / "dashboard-final.png"), full_page=True)
            browser.close()
        assert errors == []


def _row(page: Any, box: str, name: str) -> Any:
    return page.locator(f"#{box} .row").filter(has=page.locator(".label", has_text=name))


def test_page_shows_types_counts_and_schedules(
    browser_page: tuple[Any, str], tmp_path: Path
) -> None:
    page, _ = browser_page
    _row(page, "by-type", "render_video").wait_for()
    assert _row(page, "by-type", "render_video").locator(".num").text_content() == "7"
    assert _row(page, "by-type", "upload").locator(".num").text_content() == "2"
    assert _row(page, "by-state", "QUEUED").locator(".num").text_content() == "9"
    assert _row(page, "by-state", "FAILED").locator(".num").text_content() == "1"
    assert _row(page, "by-priority", "HIGH").locator(".num").text_content() == "3"
    page.locator("#schedules td", has_text="daily-analytics").wait_for()
    assert "cron 0 9 * * *" in (page.locator("#schedules").text_content() or "")
    page.locator("#tasks tbody tr").first.wait_for()
    assert page.locator("#tasks tbody tr").count() == 11
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)


def test_forecast_chart_renders(browser_page: tuple[Any, str], tmp_path: Path) -> None:
    page, _ = browser_page
    chart = page.locator("#forecast-chart svg")
    chart.wait_for()
    page.locator("#forecast-chart rect.fbar").first.wait_for()
    assert chart.get_attribute("data-total") == "10"
    types = {r.get_attribute("data-type") for r in page.locator("#forecast-chart rect.fbar").all()}
    assert types == {"render_video", "upload", "analytics", XSS_TYPE}
    legend = page.locator("#forecast-legend").text_content() or ""
    assert "render_video" in legend and "10 runs expected" in legend
    chart.screenshot(path=str(tmp_path / "forecast.png"))


def test_cancel_from_the_page(
    browser_page: tuple[Any, str], populated: Populated, tmp_path: Path
) -> None:
    page, _ = browser_page
    page.fill("#actor-input", "browser-ops")
    page.fill("#f-id", populated.keyed)
    page.click("#filters button[type=submit]")
    page.locator("#detail-id", has_text=populated.keyed).wait_for()
    page.locator("#detail-actions button", has_text="Cancel").click()
    page.locator("#status", has_text="done").wait_for()
    page.locator('#detail-fields dd[data-field="state"]', has_text="CANCELLED").wait_for()
    page.locator("#detail-audit td", has_text="browser-ops").wait_for()
    page.screenshot(path=str(tmp_path / "after-cancel.png"), full_page=True)
    task = _stored(populated.url, populated.keyed)
    assert task.lifecycle is TaskLifecycle.CANCELLED
    assert "from the dashboard by browser-ops" in (task.history[-1].reason or "")
    [entry] = task.metadata.audit_trail
    assert (entry["action"], entry["via"], entry["actor"]) == ("cancel", "dashboard", "browser-ops")


def test_xss_in_a_task_type_renders_as_text(
    browser_page: tuple[Any, str], populated: Populated, tmp_path: Path
) -> None:
    page, _ = browser_page
    _row(page, "by-type", "render_video").wait_for()
    labels = page.locator("#by-type .label").all_text_contents()
    assert XSS_TYPE in labels
    page.fill("#f-id", populated.xss)
    page.click("#filters button[type=submit]")
    page.locator('#detail-fields dd[data-field="type"]').wait_for()
    assert page.locator('#detail-fields dd[data-field="type"]').text_content() == XSS_TYPE
    assert "<script>alert(1)</script>" in (page.locator("#detail-data").text_content() or "")
    assert page.locator("main img, main script, main b").count() == 0
    assert page.evaluate("window.__xss") is None
    page.screenshot(path=str(tmp_path / "xss.png"), full_page=True)


def _on_another_thread(work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine to completion on another thread (Playwright's loop runs on this one)."""
    found: list[Any] = []
    runner = threading.Thread(target=lambda: found.append(asyncio.run(work())))
    runner.start()
    runner.join(timeout=20)
    return found[0]


def _stored(url: str, task_id: str) -> Any:
    async def read() -> Any:
        store = open_store(url)
        await store.open()
        try:
            return await store.get(task_id)
        finally:
            await store.close()

    return _on_another_thread(read)


def test_the_page_follows_the_store(browser_page: tuple[Any, str], populated: Populated) -> None:
    page, _ = browser_page
    _row(page, "by-type", "analytics").locator(".num", has_text="1").wait_for()

    async def add_one() -> None:
        scheduler = Scheduler(store=populated.url)
        register(scheduler)
        async with scheduler:
            later = datetime.now(UTC) + timedelta(hours=5)
            await scheduler.schedule_task("analytics", {}, execution_time=later)

    _on_another_thread(add_one)
    _row(page, "by-type", "analytics").locator(".num", has_text="2").wait_for()


@pytest.mark.parametrize("token", ["s3cret-token"])
def test_with_a_token_the_page_asks_for_it(browser_page: tuple[Any, str], token: str) -> None:
    page, _ = browser_page
    page.locator("#token-form").wait_for()
    assert page.locator("#by-type .row").count() == 0
    page.fill("#token-input", token)
    page.click("#token-form button[type=submit]")
    _row(page, "by-type", "render_video").wait_for()
    assert page.locator("#token-form").is_hidden()
