"""The JSON API on a store (no scheduler running): reads, paging, actions, security."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from dashboard_helpers import XSS_TYPE, Populated
from starlette.applications import Starlette

from asched import Scheduler, TaskLifecycle
from asched.dashboard import create_app
from asched.dashboard.queries import MAX_PAGE
from asched.stores import open_store

pytestmark = pytest.mark.filterwarnings("error")


async def _client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client
    await app.state.dashboard.stop()


@pytest.fixture
async def app(populated: Populated) -> Starlette:
    return create_app(populated.url)


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(app):
        yield c


def _page_token(app: Starlette) -> dict[str, str]:
    token = app.state.dashboard.guard.page_token
    return {"X-Asched-Token": token, "X-Asched-Actor": "ana"}


async def test_metrics_have_the_scheduler_keys(client: httpx.AsyncClient) -> None:
    async with Scheduler() as live:
        expected = set(await live.get_system_load_metrics())
    got = (await client.get("/api/metrics")).json()
    assert set(got) == expected
    assert got["scheduled"] == 9 and got["running"] == 0


async def test_counts_by_state_type_and_priority(client: httpx.AsyncClient) -> None:
    counts = (await client.get("/api/counts")).json()
    assert counts["by_state"] == {"QUEUED": 9, "FAILED": 1, "COMPLETED": 1}
    assert counts["by_type"] == {"render_video": 7, "upload": 2, "analytics": 1, XSS_TYPE: 1}
    assert counts["by_priority"] == {"HIGH": 3, "MEDIUM": 3, "LOW": 3}
    assert counts["total"] == 11


async def test_task_list_filters(client: httpx.AsyncClient, populated: Populated) -> None:
    async def ids(**params: str) -> list[str]:
        body = (await client.get("/api/tasks", params=params)).json()
        return [t["id"] for t in body["tasks"]]

    assert await ids(state="failed") == [populated.failed]
    assert await ids(key="channel-9") == [populated.keyed]
    assert await ids(tag="weekly") == [populated.tagged]
    assert await ids(tag="<b>bold</b>") == [populated.tagged]
    assert set(await ids(type="render_video", state="QUEUED")) == set(populated.pending)
    latest_first = await ids(type="render_video", state="QUEUED", order="due_desc")
    assert latest_first == populated.pending[::-1]


async def test_task_list_is_paged_and_never_more_than_a_page(
    client: httpx.AsyncClient, populated: Populated
) -> None:
    first = (await client.get("/api/tasks", params={"limit": 4})).json()
    second = (await client.get("/api/tasks", params={"limit": 4, "offset": 4})).json()
    assert len(first["tasks"]) == 4 and first["has_more"] is True
    seen = [t["id"] for t in first["tasks"] + second["tasks"]]
    assert len(set(seen)) == 8
    huge = (await client.get("/api/tasks", params={"limit": 1_000_000})).json()
    assert huge["limit"] == MAX_PAGE
    bad = await client.get("/api/tasks", params={"state": "NOPE"})
    assert bad.status_code == 400 and "state" in bad.json()["error"]


async def test_task_detail(client: httpx.AsyncClient, populated: Populated) -> None:
    failed = (await client.get(f"/api/tasks/{populated.failed}")).json()
    assert failed["state"] == "FAILED" and "upload refused" in failed["error"]
    assert [h["to"] for h in failed["history"]][-1] == "FAILED"
    assert failed["data"] == {"channel_id": "c0"}
    assert failed["audit_trail"] == []
    done = (await client.get(f"/api/tasks/{populated.completed}")).json()
    assert done["result"] == {"rendered": {"channel_id": "c0"}}
    assert (await client.get("/api/tasks/nope")).status_code == 404


async def test_schedules_forecast_workers(client: httpx.AsyncClient) -> None:
    schedules = (await client.get("/api/schedules")).json()
    assert [(s["id"], s["state"]) for s in schedules] == [("daily-analytics", "active")]
    assert schedules[0]["next_fire"] is not None
    forecast = (await client.get("/api/forecast", params={"hours": 24})).json()
    by_type: dict[str, int] = {}
    for bucket in forecast["buckets"]:
        for kind, n in bucket["by_type"].items():
            by_type[kind] = by_type.get(kind, 0) + n
    assert by_type == {"render_video": 6, "upload": 1, "analytics": 2, XSS_TYPE: 1}
    assert (await client.get("/api/forecast", params={"hours": "-1"})).status_code == 400
    assert (await client.get("/api/workers")).json() == []


async def test_cancel_needs_the_token_and_is_audited(
    app: Starlette, client: httpx.AsyncClient, populated: Populated
) -> None:
    path = f"/api/tasks/{populated.keyed}/cancel"
    assert (await client.post(path)).status_code == 401
    assert (await client.post(path, headers={"X-Asched-Token": "guess"})).status_code == 401
    cross = {**_page_token(app), "Origin": "http://evil.example"}
    assert (await client.post(path, headers=cross)).status_code == 403
    assert (await client.get(path)).status_code == 405
    response = await client.post(path, headers=_page_token(app))
    assert response.status_code == 200
    detail = (await client.get(f"/api/tasks/{populated.keyed}")).json()
    assert detail["state"] == "CANCELLED"
    assert "from the dashboard by ana" in detail["history"][-1]["reason"]
    [entry] = detail["audit_trail"]
    assert (entry["action"], entry["via"], entry["actor"]) == ("cancel", "dashboard", "ana")
    again = await client.post(path, headers=_page_token(app))
    assert again.status_code == 409


async def test_pause_resume_and_retry_now(
    app: Starlette, client: httpx.AsyncClient, populated: Populated
) -> None:
    headers = _page_token(app)
    tid = populated.pending[0]
    assert (await client.post(f"/api/tasks/{tid}/pause", headers=headers)).status_code == 200
    assert (await client.get(f"/api/tasks/{tid}")).json()["state"] == "PAUSED"
    assert (await client.post(f"/api/tasks/{tid}/resume", headers=headers)).status_code == 200
    resumed = (await client.get(f"/api/tasks/{tid}")).json()
    assert resumed["state"] == "QUEUED"
    assert [a["action"] for a in resumed["audit_trail"]] == ["pause", "resume"]
    refused = await client.post(f"/api/tasks/{tid}/retry", headers=headers)
    assert refused.status_code == 409
    retried = (await client.post(f"/api/tasks/{populated.failed}/retry", headers=headers)).json()
    copy = (await client.get(f"/api/tasks/{retried['new_task']}")).json()
    assert copy["state"] == "QUEUED" and copy["type"] == "upload"
    assert f"retry_of:{populated.failed}" in copy["metadata"]["tags"]
    assert copy["audit_trail"][-1]["retry_of"] == populated.failed
    original = (await client.get(f"/api/tasks/{populated.failed}")).json()
    assert original["state"] == "FAILED"  # a finished row is never written again


async def test_schedule_pause_and_resume(
    app: Starlette, client: httpx.AsyncClient, populated: Populated
) -> None:
    headers = _page_token(app)
    path = f"/api/schedules/{populated.schedule_id}"
    assert (await client.post(f"{path}/pause", headers=headers)).status_code == 200
    assert (await client.get("/api/schedules")).json()[0]["state"] == "paused"
    assert (await client.post(f"{path}/pause", headers=headers)).status_code == 409
    assert (await client.post(f"{path}/resume", headers=headers)).status_code == 200
    assert (await client.get("/api/schedules")).json()[0]["state"] == "active"
    assert (await client.post("/api/schedules/nope/pause", headers=headers)).status_code == 404


async def test_a_workers_scheduler_sees_the_dashboard_cancel(
    app: Starlette, client: httpx.AsyncClient, populated: Populated
) -> None:
    await client.post(f"/api/tasks/{populated.tagged}/cancel", headers=_page_token(app))
    await app.state.dashboard.stop()
    store = open_store(populated.url)
    await store.open()
    try:
        task = await store.get(populated.tagged)
    finally:
        await store.close()
    assert task is not None and task.lifecycle is TaskLifecycle.CANCELLED


async def test_with_a_token_every_api_call_needs_it(populated: Populated) -> None:
    app = create_app(populated.url, token="s3cret")
    async for client in _client(app):
        assert (await client.get("/api/metrics")).status_code == 401
        ok = await client.get("/api/metrics", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        page = (await client.get("/")).text
        assert 'name="asched-page-token" content=""' in page
        assert "s3cret" not in page
        path = f"/api/tasks/{populated.keyed}/cancel"
        assert (await client.post(path, headers={"X-Asched-Token": "s3cret"})).status_code == 200


async def test_page_and_assets_are_served_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("static/dashboard.js", "static/dashboard.css"):
        assert (await client.get(f"/{asset}")).status_code == 200
        assert asset in page.text


async def test_trusted_hosts_refuse_other_host_names(populated: Populated) -> None:
    app = create_app(populated.url, trusted_hosts=["127.0.0.1", "localhost"])
    async for client in _client(app):
        assert (await client.get("/api/workers")).status_code == 200
        rebound = await client.get("/api/workers", headers={"Host": "evil.example"})
        assert rebound.status_code == 400


async def test_workers_holding_leases_are_listed(
    client: httpx.AsyncClient, populated: Populated
) -> None:
    store = open_store(populated.url)
    await store.open()
    try:
        now = time.time()
        await store.claim(populated.pending[:2], "worker-a:1", now, 30.0)
        await store.claim(populated.pending[2:3], "worker-b:2", now, 30.0)
        workers = (await client.get("/api/workers")).json()
    finally:
        await store.close()
    assert [(w["id"], w["leased_tasks"]) for w in sorted(workers, key=lambda w: w["id"])] == [
        ("worker-a:1", 2),
        ("worker-b:2", 1),
    ]


async def test_a_task_a_worker_holds_is_asked_of_that_worker(
    app: Starlette, client: httpx.AsyncClient, populated: Populated
) -> None:
    store = open_store(populated.url)
    await store.open()
    try:
        task_id = populated.pending[0]
        await store.claim([task_id], "worker-a:1", time.time(), 30.0)
        done = await client.post(f"/api/tasks/{task_id}/cancel", headers=_page_token(app))
        assert done.status_code == 200
        (request,) = await store.take_control_requests("worker-a:1")
    finally:
        await store.close()
    assert (request["task_id"], request["action"], request["via"]) == (
        task_id,
        "cancel",
        "dashboard",
    )
    assert "from the dashboard" in request["reason"]
