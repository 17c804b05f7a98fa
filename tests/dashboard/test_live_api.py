"""The JSON API over a Scheduler running in the same process (its public API)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from asched import Scheduler, TaskLifecycle
from asched.dashboard import create_app

LATER = timedelta(hours=3)


@pytest.fixture(params=["memory", "sqlite"])
async def scheduler(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Scheduler]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'live.db'}"
    s = Scheduler(store=url)
    started = asyncio.Event()

    async def slow(**data: Any) -> str:
        started.set()
        await asyncio.sleep(30)
        return "late"

    async def broken(**data: Any) -> None:
        raise ValueError("broken on purpose")

    s.register("slow", slow)
    s.register("broken", broken, max_retries=0)
    s.register("report", lambda **data: None, executor="local")
    async with s:
        yield s


@pytest.fixture
async def client(scheduler: Scheduler) -> AsyncIterator[tuple[httpx.AsyncClient, Starlette]]:
    app = create_app(scheduler)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        yield c, app
    await app.state.dashboard.stop()


def _headers(app: Starlette) -> dict[str, str]:
    return {"X-Asched-Token": app.state.dashboard.guard.page_token, "X-Asched-Actor": "ops"}


async def _until(check: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_metrics_are_the_schedulers_own(
    scheduler: Scheduler, client: tuple[httpx.AsyncClient, Starlette]
) -> None:
    c, _ = client
    await scheduler.schedule_task("report", {}, execution_time=datetime.now(UTC) + LATER)
    got = (await c.get("/api/metrics")).json()
    expected = await scheduler.get_system_load_metrics()
    assert set(got) == set(expected)
    assert got["scheduled"] == expected["scheduled"] == 1


async def test_running_task_shows_with_its_age_and_can_be_cancelled(
    scheduler: Scheduler, client: tuple[httpx.AsyncClient, Starlette]
) -> None:
    c, app = client
    tid = await scheduler.schedule_task("slow", {"n": 1}, concurrency_key="channel-1")

    async def running() -> bool:
        overview = (await c.get("/api/overview")).json()
        return [t["id"] for t in overview["running"]] == [tid]

    await _until(running)
    overview = (await c.get("/api/overview")).json()
    assert overview["running"][0]["age_s"] >= 0
    assert overview["key_load"] == [{"key": "channel-1", "running": 1}]
    response = await c.post(f"/api/tasks/{tid}/cancel", headers=_headers(app))
    assert response.status_code == 200
    task = await scheduler.get_task(tid)
    assert task.lifecycle is TaskLifecycle.CANCELLED
    assert task.history[-1].reason == "cancelled from the dashboard by ops from 127.0.0.1"


async def test_pause_resume_in_the_scheduler(
    scheduler: Scheduler, client: tuple[httpx.AsyncClient, Starlette]
) -> None:
    c, app = client
    tid = await scheduler.schedule_task("report", {}, execution_time=datetime.now(UTC) + LATER)
    assert (await c.post(f"/api/tasks/{tid}/pause", headers=_headers(app))).status_code == 200
    assert await scheduler.get_task_status(tid) is TaskLifecycle.PAUSED
    assert (await c.post(f"/api/tasks/{tid}/pause", headers=_headers(app))).status_code == 200
    assert (await c.post(f"/api/tasks/{tid}/resume", headers=_headers(app))).status_code == 200
    task = await scheduler.get_task(tid)
    assert task.lifecycle is TaskLifecycle.QUEUED or task.lifecycle is TaskLifecycle.SCHEDULED
    reasons = [t.reason for t in task.history if t.reason]
    assert any(r.startswith("paused from the dashboard") for r in reasons)
    assert any(r.startswith("resumed from the dashboard") for r in reasons)
    refused = await c.post(f"/api/tasks/{tid}/resume", headers=_headers(app))
    assert refused.status_code == 409


async def test_retry_now_runs_a_copy_of_a_failed_task(
    scheduler: Scheduler, client: tuple[httpx.AsyncClient, Starlette]
) -> None:
    c, app = client
    tid = await scheduler.schedule_task("broken", {"x": 1}, tags=["nightly"])
    with pytest.raises(Exception, match="broken on purpose"):
        await scheduler.wait_for(tid, timeout=5)
    body = (await c.post(f"/api/tasks/{tid}/retry", headers=_headers(app))).json()
    copy = await scheduler.get_task(body["new_task"])
    assert copy.type == "broken" and copy.data == {"x": 1}
    assert copy.metadata.tags == ["nightly", f"retry_of:{tid}"]
    assert copy.metadata.created_by == "dashboard:ops"


async def test_schedules_forecast_workers_breakers(
    scheduler: Scheduler, client: tuple[httpx.AsyncClient, Starlette]
) -> None:
    c, app = client
    sid = await scheduler.schedule_recurring("report", interval=600, schedule_id="every-10-min")
    schedules = (await c.get("/api/schedules")).json()
    assert [s["id"] for s in schedules] == [sid]
    forecast = (await c.get("/api/forecast", params={"hours": 2})).json()
    assert forecast["total"] == 12
    assert (await c.post(f"/api/schedules/{sid}/pause", headers=_headers(app))).status_code == 200
    assert (await scheduler.get_schedule(sid))["state"] == "paused"
    assert (await c.post(f"/api/schedules/{sid}/resume", headers=_headers(app))).status_code == 200
    [me] = (await c.get("/api/workers")).json()
    assert me["this_process"] is True and me["task_types"] == ["slow", "broken", "report"]
    assert (await c.get("/api/overview")).json()["breakers"] == scheduler.breaker_states()


async def test_the_task_list_is_paged(
    scheduler: Scheduler, client: tuple[httpx.AsyncClient, Starlette]
) -> None:
    c, _ = client
    due = datetime.now(UTC) + LATER
    ids = [await scheduler.schedule_task("report", {"i": i}, execution_time=due) for i in range(7)]
    await scheduler.list_tasks(limit=1)  # hands this loop's changes to the store

    async def listed() -> list[str]:
        found: list[str] = []
        for offset in (0, 3, 6):
            page = (await c.get("/api/tasks", params={"limit": 3, "offset": offset})).json()
            found += [t["id"] for t in page["tasks"]]
        return found

    assert sorted(await listed()) == sorted(ids)


async def test_mounted_in_a_users_app(scheduler: Scheduler) -> None:
    from starlette.routing import Mount

    board = create_app(scheduler, token="t")
    outer = Starlette(routes=[Mount("/asched", board)])
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
        page = await c.get("/asched/")
        assert page.status_code == 200 and 'src="static/dashboard.js"' in page.text
        assert (await c.get("/asched/static/dashboard.js")).status_code == 200
        assert (await c.get("/asched/api/metrics")).status_code == 401
        metrics = await c.get("/asched/api/metrics", headers={"X-Asched-Token": "t"})
        assert metrics.json()["max_concurrency"] == scheduler.config.max_concurrency
    await board.state.dashboard.stop()
