"""This worker's part in the cluster, beside its leases: its record in the
store's worker registry (registered at start, beaten with the lease heartbeat,
removed at stop), the cancel and pause requests other processes leave for the
tasks it holds, and the store's change notification for those who follow the
store (``wait_for`` on a task running elsewhere, live schedules, dependencies
that ended in another worker)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from asched.clock import monotonic
from asched.engine import control
from asched.model.states import RUNNING
from asched.stores.base import worker_status

if TYPE_CHECKING:
    from asched.engine.loop import Engine

logger = logging.getLogger(__name__)

#: A follower of the store runs at most this often.
FOLLOW_EVERY_S = 0.25
#: A lost worker's record is removed by the next worker that starts this much later.
FORGET_LOST_AFTER_S = 86400.0


def asched_version() -> str:
    try:
        return version("asched")
    except PackageNotFoundError:
        return "unknown"


class ClusterDuties:
    def __init__(self, engine: Engine, lease_s: float) -> None:
        self._engine = engine
        self._lease_s = lease_s
        self.registered = False
        self._changed = asyncio.Event()
        self._followers: list[tuple[Callable[[], Awaitable[None]], list[float]]] = []

    # -- the worker registry -----------------------------------------------------------

    def record(self) -> dict[str, Any]:
        now = self._engine.clock.now()
        return {
            "id": self._engine.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_s": now,
            "heartbeat_s": now,
            "running": 0,
            "version": asched_version(),
            "lease_s": self._lease_s,
            "task_types": sorted(self._engine.registry.names()),
        }

    async def register(self) -> None:
        """Join the registry -- only a process that runs tasks is a worker -- and
        forget workers lost long ago."""
        if not self._engine.registry.names():
            return
        store = self._engine.store
        await store.register_worker(self.record())
        self.registered = True
        now = self._engine.clock.now()
        for record in await store.list_workers():
            if now - float(record.get("heartbeat_s", 0.0)) > FORGET_LOST_AFTER_S:
                await store.remove_worker(record["id"])

    async def beat(self) -> None:
        if not self.registered:
            return
        engine = self._engine
        running = engine.state_counts[RUNNING]
        figures = None if engine.worker_figures is None else engine.worker_figures()
        now = engine.clock.now()
        if not await engine.store.heartbeat_worker(engine.owner, now, running, figures):
            await engine.store.register_worker(self.record())  # removed meanwhile: back in

    async def leave(self) -> None:
        if self.registered:
            self.registered = False
            await self._engine.store.remove_worker(self._engine.owner)

    # -- after each round of the poller ------------------------------------------------

    def follow(
        self, follower: Callable[[], Awaitable[None]], every_s: float = FOLLOW_EVERY_S
    ) -> Callable[[], None]:
        """Run ``follower`` after polling rounds, at most every ``every_s``; returns a
        function that stops it."""
        entry = (follower, [0.0, every_s])
        self._followers.append(entry)
        return lambda: self._followers.remove(entry) if entry in self._followers else None

    async def changed(self, timeout_s: float) -> None:
        """Sleep until the next polling round (another process may have written), or
        ``timeout_s``."""
        event = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()

    async def after_round(self) -> None:
        """The poller looked at the store: carry out requests, wake the followers."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()
        await self.take_requests()
        now = monotonic()
        for follower, last in list(self._followers):
            if now - last[0] >= last[1]:
                last[0] = now
                try:
                    await follower()
                except Exception:
                    logger.exception("following the store failed; trying again later")

    async def take_requests(self) -> None:
        engine = self._engine
        for request in await engine.store.take_control_requests(engine.owner):
            try:
                await control.apply_request(engine, request)
            except Exception:
                logger.exception("carrying out %r failed", request)


async def list_workers(engine: Engine) -> list[dict[str, Any]]:
    """The store's workers as readers see them: live, or lost once their last beat
    is older than their lease (their tasks go to the others as the leases expire)."""
    now = engine.clock.now()
    return [_view(record, now) for record in await engine.store.list_workers()]


def _view(record: dict[str, Any], now_s: float) -> dict[str, Any]:
    return {
        "id": record["id"],
        "host": record.get("host"),
        "pid": record.get("pid"),
        "started": _dt(record.get("started_s")),
        "last_heartbeat": _dt(record.get("heartbeat_s")),
        "running": int(record.get("running", 0)),
        "version": record.get("version"),
        "status": worker_status(record, now_s),
        "task_types": list(record.get("task_types") or ()),
    }


def _dt(epoch_s: Any) -> datetime | None:
    return None if epoch_s is None else datetime.fromtimestamp(float(epoch_s), UTC)
