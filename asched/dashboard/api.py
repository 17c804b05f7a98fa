"""The JSON API behind the page: one function per route, reading the
:class:`~asched.dashboard.app.Dashboard` the app holds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from asched.dashboard.auth import actor_of
from asched.dashboard.queries import TaskQuery
from asched.dashboard.views import dumps, key_load, task_detail, task_summary
from asched.errors import TaskValidationError
from asched.observability.forecast import BUCKETS_S

if TYPE_CHECKING:
    from asched.dashboard.app import Dashboard

MAX_FORECAST_HOURS = 24 * 7


def json(value: Any, status: int = 200) -> Response:
    return Response(
        dumps(value),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _dashboard(request: Request) -> Dashboard:
    board: Dashboard = request.app.state.dashboard
    return board


async def metrics(request: Request) -> Response:
    board = _dashboard(request)
    values = await board.source.metrics()
    board.history.record(board.source.now(), values)
    return json(values)


async def metrics_history(request: Request) -> Response:
    return json(_dashboard(request).history.as_dict())


async def overview(request: Request) -> Response:
    """What the page refreshes every few seconds, in one request."""
    board = _dashboard(request)
    source = board.source
    now = source.now()
    counts = await source.counts()
    values = await source.metrics(counts)
    board.history.record(now, values)
    running = await source.running()
    return json(
        {
            "now": now,
            "mode": board.mode,
            "metrics": values,
            "counts": counts.as_dict(),
            "running": [task_summary(t, now) for t in running],
            "key_load": key_load(running),
            "breakers": source.breakers(),
            "workers": await source.workers(),
        }
    )


async def counts(request: Request) -> Response:
    return json((await _dashboard(request).source.counts()).as_dict())


async def tasks(request: Request) -> Response:
    source = _dashboard(request).source
    query = TaskQuery.from_params(request.query_params)
    page = await source.page(query)
    now = source.now()
    return json(
        {
            "tasks": [task_summary(t, now) for t in page.tasks],
            "offset": query.offset,
            "limit": query.limit,
            "has_more": page.has_more,
            "scan_capped": page.scan_capped,
        }
    )


async def task(request: Request) -> Response:
    source = _dashboard(request).source
    found = await source.get_task(request.path_params["task_id"])
    return json(task_detail(found, source.now()))


async def schedules(request: Request) -> Response:
    return json(await _dashboard(request).source.schedules())


async def forecast(request: Request) -> Response:
    params = request.query_params
    hours = _hours(params.get("hours"))
    bucket = params.get("bucket") or "hour"
    if bucket not in BUCKETS_S:
        raise TaskValidationError("bucket", bucket, f"one of {', '.join(BUCKETS_S)}")
    found = await _dashboard(request).source.forecast(hours, bucket, params.get("type") or None)
    return json(found)


def _hours(raw: str | None) -> float:
    if raw is None or raw == "":
        return 24.0
    try:
        hours = float(raw)
    except ValueError:
        raise TaskValidationError("hours", raw, "expected a number") from None
    if not 0 < hours <= MAX_FORECAST_HOURS:
        raise TaskValidationError("hours", raw, f"must be > 0 and <= {MAX_FORECAST_HOURS}")
    return hours


async def workers(request: Request) -> Response:
    return json(await _dashboard(request).source.workers())


async def task_action(request: Request) -> Response:
    board = _dashboard(request)
    board.guard.check_action(request)
    source = board.source
    task_id = request.path_params["task_id"]
    actor = actor_of(request)
    action = request.path_params["action"]
    if action == "cancel":
        done = await source.cancel(task_id, actor)
    elif action == "pause":
        done = await source.pause(task_id, actor)
    elif action == "resume":
        done = await source.resume(task_id, actor)
    elif action == "retry":
        done = await source.retry_now(task_id, actor)
    else:
        return json({"error": f"unknown action {action!r}"}, 404)
    return json(done)


async def schedule_action(request: Request) -> Response:
    board = _dashboard(request)
    board.guard.check_action(request)
    action = request.path_params["action"]
    if action not in ("pause", "resume"):
        return json({"error": f"unknown action {action!r}"}, 404)
    done = await board.source.set_schedule_paused(
        request.path_params["schedule_id"], action == "pause", actor_of(request)
    )
    return json(done)
