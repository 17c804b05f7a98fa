"""Starting and stopping the engine, and re-arming what a previous run left.

Start: open the store and the executors, recover unfinished tasks, start the
attached services (recurring schedules, retention) and, on a durable store --
always shared with other processes -- the lease coordinator.  Stop: take no
more work, let running attempts finish within the grace period, then cancel
them and hand them back QUEUED.  Nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from asched.clock import LoopClock
from asched.engine import watchdog
from asched.engine.attempts import SHUTDOWN
from asched.engine.retention import Retention
from asched.engine.shared import SharedStoreCoordinator
from asched.engine.timers import ArmedWheel
from asched.errors import SchedulerStateError
from asched.model.states import PAUSED, QUEUED, RETRYING, RUNNING, SCHEDULED

if TYPE_CHECKING:
    from asched.engine.loop import Engine

logger = logging.getLogger(__name__)


async def start(engine: Engine) -> None:
    if engine.is_running:
        raise SchedulerStateError("the scheduler is already running")
    engine.registry.verify_importable()  # process handlers, now that their modules are loaded
    loop = asyncio.get_running_loop()
    clock = engine.clock_override or LoopClock(loop)
    engine.loop = loop
    engine.clock = clock
    engine.wheel = ArmedWheel(clock, engine.on_due)
    engine.line.bind(clock)
    engine.is_closing = False
    engine.failure = None
    engine.crashed = loop.create_future()
    engine.store.max_payload_bytes = engine.config.max_payload_bytes
    await engine.store.open()
    watchdog.watch_component(engine, engine.store, "store writer")
    if engine.writeback is not None:
        engine.writeback.start()
        watchdog.watch_component(engine, engine.writeback, "write-back flusher")
    await engine.attempts.start()
    engine.attempts.on_broken = lambda what, exc: watchdog.fail(engine, what, exc)
    engine.stopped = False
    engine.is_running = True
    config = engine.config
    coordinator = None
    if engine.store.durable:  # a durable store is always shared; no flag needed
        coordinator = SharedStoreCoordinator(engine, config.lease_s, config.poll_interval_s)
        if engine.writeback is not None:
            engine.writeback.fence = coordinator
    engine.shared_coordinator = coordinator
    await recover(engine)
    for service in engine.services:
        await service.start()
        watchdog.watch_component(engine, service, type(service).__name__)
    engine.retention = Retention(engine)
    await engine.retention.start()
    if coordinator is not None:
        await coordinator.cluster.register()
        coordinator.start()
        watchdog.watch_component(engine, coordinator, "shared-store coordinator")


async def recover(engine: Engine) -> None:
    """Re-arm what a previous run left unfinished in the store."""
    now = engine.clock.now()
    engine.active.clear()
    engine.state_counts[:] = [0] * len(engine.state_counts)
    shared = engine.shared_coordinator is not None
    for task in await engine.store.load_unfinished():
        if shared and task.lifecycle is RUNNING:
            continue  # its owner may be alive; the poller takes it if its lease expires
        if shared and task.lifecycle is PAUSED:
            # Held by a user (a resume arms it) or by dependencies that may run in any
            # worker: the dependency sweep frees it, under a lease, once they end.
            continue
        engine.active[task.id] = task
        engine.state_counts[task.lifecycle] += 1
    for task in list(engine.active.values()):
        state = task.lifecycle
        if state is RETRYING or (shared and state is SCHEDULED):
            engine.place(task, now)  # armed again, nothing written: a claim decides
            continue
        if state is RUNNING:
            engine.move(task, QUEUED, now, "recovered: the previous run was interrupted")
        elif state is SCHEDULED:
            engine.move(task, QUEUED, now, "recovered after restart")
        elif state is PAUSED:
            unmet = [d for d in task.dependencies if d in engine.active]
            if unmet:
                engine.deps.hold(task.id, unmet)
            if unmet or task.user_paused:
                continue
            engine.move(task, QUEUED, now, "recovered after restart")
        engine.arm(task, now)


async def stop(engine: Engine, grace_s: float | None) -> None:
    if engine.stopped:
        return
    engine.stopped = True
    engine.is_running = False
    engine.is_closing = True
    try:
        await _stop(engine, grace_s)
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        if engine.failure is None:
            raise
        # The crash is the news; what it broke on the way down only goes to the log.
        logger.error("stopping after the crash also failed: %s: %s", type(exc).__name__, exc)
    if engine.crashed is not None and not engine.crashed.done():
        engine.crashed.cancel()
    if engine.failure is not None:  # cleaned up what it could; now say why it stopped
        raise engine.failure


async def _stop(engine: Engine, grace_s: float | None) -> None:
    if engine.retention is not None:
        await engine.retention.stop()
    for service in reversed(engine.services):
        await service.stop()
    shared = engine.shared_coordinator
    if shared is not None:
        await shared.stop()
        try:
            await shared.cluster.leave()
        except Exception as exc:  # its record goes stale and reads as lost
            logger.warning("leaving the worker registry failed: %s", exc)
    engine.wheel.stop()
    await _drain(engine, engine.config.grace_period_s if grace_s is None else grace_s)
    now = engine.clock.now()
    for task in list(engine.active.values()):
        if task.lifecycle is SCHEDULED:
            engine.disarm(task)
            # With a shared store this is not written: the row still says QUEUED
            # (SCHEDULED is never stored), and another process may own it by now.
            if shared is None:
                engine.move(task, QUEUED, now, "scheduler stopped before it was due")
        elif task.lifecycle is RETRYING:
            engine.disarm(task)
    await engine.attempts.shutdown()
    try:
        if engine.writeback is not None:
            await engine.writeback.stop()
        if shared is not None:
            await shared.release_idle()
    finally:
        engine.shared_coordinator = None
        await engine.store.close()


async def _drain(engine: Engine, grace_s: float) -> None:
    running = {t._handle: t for t in engine.active.values() if isinstance(t._handle, asyncio.Task)}
    if running:
        _, late = await asyncio.wait(running, timeout=grace_s)
        for handle in late:
            engine.attempts.cancel(running[handle], SHUTDOWN)
        if late:
            await asyncio.wait(late)


def end_grace(engine: Engine) -> int:
    """Cut short the grace period of a stop in progress: cancel every running attempt
    now (each is handed back QUEUED).  How many were cancelled."""
    if not engine.is_closing:
        return 0
    cancelled = 0
    for task in engine.active.values():
        if task.lifecycle is RUNNING and engine.attempts.cancel(task, SHUTDOWN):
            cancelled += 1
    return cancelled
