"""Starting and stopping the engine, and re-arming what a previous run left.

Start: open the store and the executors, recover unfinished tasks, start the
attached services (recurring schedules, retention) and, on a durable store --
always shared with other processes -- the lease coordinator.  Stop: take no
more work, let running attempts finish within the grace period, then cancel
them and hand them back QUEUED.  Nothing is dropped.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from asched.clock import LoopClock
from asched.engine.retention import Retention
from asched.engine.shared import SharedStoreCoordinator
from asched.engine.timers import ArmedWheel
from asched.model.states import PAUSED, QUEUED, RETRYING, RUNNING, SCHEDULED

if TYPE_CHECKING:
    from asched.engine.loop import Engine


async def start(engine: Engine) -> None:
    from asched.errors import SchedulerStateError

    if engine.is_running:
        raise SchedulerStateError("the scheduler is already running")
    loop = asyncio.get_running_loop()
    clock = engine.clock_override or LoopClock(loop)
    engine.loop = loop
    engine.clock = clock
    engine.wheel = ArmedWheel(clock, engine.on_due)
    engine.line.bind(clock)
    engine.is_closing = False
    engine.store.max_payload_bytes = engine.config.max_payload_bytes
    await engine.store.open()
    if engine.writeback is not None:
        engine.writeback.start()
    await engine.attempts.start()
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
    engine.retention = Retention(engine)
    await engine.retention.start()
    if coordinator is not None:
        coordinator.start()


async def recover(engine: Engine) -> None:
    """Re-arm what a previous run left unfinished in the store."""
    now = engine.clock.now()
    engine.active.clear()
    engine.state_counts[:] = [0] * len(engine.state_counts)
    shared = engine.shared_coordinator is not None
    for task in await engine.store.load_unfinished():
        if shared and task.lifecycle is RUNNING:
            continue  # its owner may be alive; the poller takes it if its lease expires
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
    if not engine.is_running:
        return
    engine.is_running = False
    engine.is_closing = True
    if engine.retention is not None:
        await engine.retention.stop()
    for service in reversed(engine.services):
        await service.stop()
    shared = engine.shared_coordinator
    if shared is not None:
        await shared.stop()
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
    running = [t._handle for t in engine.active.values() if isinstance(t._handle, asyncio.Task)]
    if running:
        _, late = await asyncio.wait(running, timeout=grace_s)
        for handle in late:
            handle.cancel()
        if late:
            await asyncio.wait(late)


def end_grace(engine: Engine) -> int:
    """Cut short the grace period of a stop in progress: cancel every running attempt
    now (each is handed back QUEUED).  How many were cancelled."""
    if not engine.is_closing:
        return 0
    cancelled = 0
    for task in engine.active.values():
        handle = task._handle
        if task.lifecycle is RUNNING and isinstance(handle, asyncio.Task) and not handle.done():
            handle.cancel()
            cancelled += 1
    return cancelled
