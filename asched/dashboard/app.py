"""``create_app``: the dashboard as an ASGI application.

::

    from asched.dashboard import create_app
    app = create_app(scheduler)                  # a Scheduler running in this process
    app = create_app("sqlite:///bot.db", token=os.environ["ASCHED_TOKEN"])  # a store

Mount it in your own Starlette/FastAPI app with ``Mount("/asched", app)``;
the page uses relative URLs, so any prefix works.  A mounted app's lifespan
is not run by its parent, so the dashboard starts on its first request; call
``await app.state.dashboard.stop()`` when your app shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from html import escape
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from asched.dashboard import api
from asched.dashboard.auth import Forbidden, Guard
from asched.dashboard.history import MetricsHistory
from asched.dashboard.sources import ActionRefusedError, DashboardSource, LiveSource
from asched.dashboard.store_source import StoreSource
from asched.errors import (
    AschedError,
    ScheduleNotFoundError,
    TaskNotFoundError,
    TaskValidationError,
)
from asched.scheduler import Scheduler
from asched.stores import open_store
from asched.stores.base import Store

logger = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]

#: No inline script or style, nothing from elsewhere: injected markup could not run.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}


class Dashboard:
    """What the routes share: the source, the guard, the metrics history."""

    def __init__(self, source: DashboardSource, guard: Guard, history: MetricsHistory) -> None:
        self.source = source
        self.guard = guard
        self.history = history
        self.mode = "live" if isinstance(source, LiveSource) else "store"
        self._started = False
        self._lock = asyncio.Lock()

    async def ensure_started(self) -> None:
        if self._started:
            return
        async with self._lock:
            if not self._started:
                await self.source.start()
                self.history.start(self.source.metrics)
                self._started = True

    async def stop(self) -> None:
        async with self._lock:
            await self.history.stop()
            if self._started:
                await self.source.stop()
                self._started = False


def create_app(
    scheduler_or_store_url: Scheduler | Store | str,
    token: str | None = None,
    *,
    trusted_hosts: Sequence[str] | None = None,
    sample_interval_s: float = 10.0,
) -> Starlette:
    """The dashboard for a running :class:`~asched.Scheduler` (its public API), or
    for a store URL or :class:`~asched.stores.base.Store` (read directly; no task
    runs).  ``token``: required on every API call, and for actions (see
    :mod:`asched.dashboard.auth`).  ``trusted_hosts``: the Host names accepted
    (e.g. ``["127.0.0.1", "localhost"]``, which also stops DNS rebinding)."""
    target = scheduler_or_store_url
    if isinstance(target, Scheduler):
        source: DashboardSource = LiveSource(target)
    else:
        source = StoreSource(open_store(target) if isinstance(target, str) else target)
    board = Dashboard(source, Guard(token), MetricsHistory(sample_interval_s))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await board.ensure_started()
        try:
            yield
        finally:
            await board.stop()

    middleware = []
    if trusted_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(trusted_hosts)))
    app = Starlette(routes=_routes(board), middleware=middleware, lifespan=lifespan)
    app.state.dashboard = board
    return app


def _routes(board: Dashboard) -> list[Route]:
    def guarded(endpoint: Endpoint) -> Endpoint:
        async def run(request: Request) -> Response:
            try:
                await board.ensure_started()
                board.guard.check_read(request)
                return await endpoint(request)
            except Forbidden as exc:
                return api.json({"error": str(exc)}, exc.status)
            except (TaskNotFoundError, ScheduleNotFoundError) as exc:
                return api.json({"error": str(exc)}, 404)
            except ActionRefusedError as exc:
                return api.json({"error": str(exc)}, 409)
            except TaskValidationError as exc:
                return api.json({"error": str(exc)}, 400)
            except AschedError as exc:
                logger.warning("dashboard request %s failed: %s", request.url.path, exc)
                return api.json({"error": str(exc)}, 500)

        return run

    def get(path: str, endpoint: Endpoint) -> Route:
        return Route(path, guarded(endpoint), methods=["GET"])

    def post(path: str, endpoint: Endpoint) -> Route:
        return Route(path, guarded(endpoint), methods=["POST"])

    async def page(request: Request) -> Response:
        return HTMLResponse(render_page(board.guard), headers=PAGE_HEADERS)

    return [
        Route("/", page, methods=["GET"]),
        get("/api/overview", api.overview),
        get("/api/metrics", api.metrics),
        get("/api/metrics/history", api.metrics_history),
        get("/api/counts", api.counts),
        get("/api/tasks", api.tasks),
        get("/api/tasks/{task_id}", api.task),
        post("/api/tasks/{task_id}/{action}", api.task_action),
        get("/api/schedules", api.schedules),
        post("/api/schedules/{schedule_id}/{action}", api.schedule_action),
        get("/api/forecast", api.forecast),
        get("/api/workers", api.workers),
        Route("/static/{name}", _assets(), methods=["GET"]),
    ]


def _assets() -> Endpoint:
    """The page's script and stylesheet, read once from the package and served
    from memory."""
    folder = resources.files("asched.dashboard").joinpath("static")
    assets = {name: (folder.joinpath(name).read_bytes(), media) for name, media in ASSETS.items()}

    async def asset(request: Request) -> Response:
        found = assets.get(request.path_params["name"])
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        body, media = found
        headers = {"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"}
        return Response(body, media_type=media, headers=headers)

    return asset


def render_page(guard: Guard) -> str:
    """The page, with the per-process action token when no token was configured."""
    template = resources.files("asched.dashboard").joinpath("static/index.html").read_text()
    page_token = escape(guard.page_token or "", quote=True)
    needs_token = "true" if guard.token else "false"
    return template.replace("{{PAGE_TOKEN}}", page_token).replace("{{NEEDS_TOKEN}}", needs_token)
