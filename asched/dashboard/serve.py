"""Serve the dashboard with uvicorn: on a store (``asched dashboard``), or beside a
scheduler running in this process (``asched run APP --dashboard PORT``).

On a store URL the dashboard reads the store and acts on it under leases; it
starts no scheduler, since a scheduler without the app's handlers would fail
every due task it picked up.  It binds 127.0.0.1 unless told otherwise; bound
elsewhere without a token it warns, because anyone who can reach the port can
then read every task.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
from collections.abc import Iterator

import uvicorn

from asched.dashboard.app import create_app
from asched.errors import ConfigError, DashboardError
from asched.scheduler import Scheduler
from asched.stores import open_store
from asched.stores.memory import MemoryStore

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8900
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        logger.warning(
            "the dashboard is bound to %s without a token: anyone who can reach it can "
            "read every task (actions still need the page's own token); pass --token",
            host,
        )


class DashboardServer(uvicorn.Server):
    """uvicorn, leaving stop signals to its host: ``asched run`` drains its worker
    on them, and :func:`run_dashboard` installs its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_server(
    target: Scheduler | str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
) -> DashboardServer:
    """A uvicorn server for the dashboard (not yet serving).  Bound to loopback
    without a token, it accepts only loopback Host names (no DNS rebinding)."""
    check_exposure(host, token)
    trusted = list(LOOPBACK_NAMES) if is_loopback(host) and not token else None
    app = create_app(target, token, trusted_hosts=trusted)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    return DashboardServer(config)


def check_store_url(url: str) -> None:
    """Refuse a store the dashboard cannot show: memory://, or a missing database."""
    store = open_store(url)
    if isinstance(store, MemoryStore):
        raise ConfigError("store", url, "memory:// keeps nothing between processes")
    path = getattr(store, "path", None)
    if isinstance(path, str) and not os.path.isfile(path):
        raise ConfigError("store", url, f"no database at {os.path.abspath(path)}")


def run_dashboard(
    store_url: str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
) -> None:
    """Serve the dashboard of the store at ``store_url`` until SIGINT or SIGTERM."""
    check_store_url(store_url)
    server = build_server(store_url, host, port, token)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, setattr, server, "should_exit", True)
        await server.serve()

    print(f"asched dashboard for {store_url} on http://{_url_host(host)}:{port}/", flush=True)
    asyncio.run(serve())


class BesideServer:
    """The dashboard served on the loop of a scheduler running in this process."""

    def __init__(self, scheduler: Scheduler, port: int, host: str, token: str | None) -> None:
        self.server = build_server(scheduler, host, port, token)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve in the background; returns once listening (raises if it cannot)."""
        self._task = asyncio.get_running_loop().create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()  # the bind failed: raise its error
                raise DashboardError("the dashboard stopped before it started")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
