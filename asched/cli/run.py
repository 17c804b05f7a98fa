"""``asched run``: a long-running worker for an app's Scheduler.

The first SIGTERM or SIGINT drains: no new work starts, running tasks get the
grace period to finish, then are cancelled and handed back (QUEUED) for the
next worker; the exit code is 0.  A second signal ends the grace period at
once.  Nothing is lost either way: every unfinished task stays in the store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from asched.background import cancel_and_wait
from asched.cli.app import App, describe_store
from asched.cli.eventloop import new_event_loop
from asched.cli.format import plural, printable
from asched.errors import AschedError
from asched.model import TaskLifecycle
from asched.scheduler import Scheduler

if TYPE_CHECKING:
    from asched.dashboard.serve import BesideServer

logger = logging.getLogger("asched.cli")

_UNFINISHED = [s for s in TaskLifecycle if s is not TaskLifecycle.CREATED and not s.is_terminal]
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SignalDrain:
    """Turns stop signals into a graceful drain, then a hurried one."""

    def __init__(self, scheduler: Scheduler, grace_s: float) -> None:
        self.scheduler = scheduler
        self.grace_s = grace_s
        self.received = 0
        self.requested = asyncio.Event()

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, self.on_signal, sig)

    def remove(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)

    def on_signal(self, sig: signal.Signals) -> None:
        self.received += 1
        if self.received == 1:
            logger.info(
                "%s received: draining; running tasks get %gs to finish "
                "(send SIGTERM or SIGINT again to stop them now)",
                sig.name,
                self.grace_s,
            )
            self.requested.set()
            return
        cancelled = self.scheduler.end_grace()
        logger.warning(
            "%s: a second stop signal; ending the grace period, %s cancelled and handed back",
            sig.name,
            plural(cancelled, "running task"),
        )

    async def drain(self) -> None:
        # stop() marks the scheduler as closing before its first await, so a later
        # signal always finds a stop in progress for end_grace() to cut short.
        await self.scheduler.stop(0.0 if self.received > 1 else self.grace_s)


async def serve(
    app: App, grace_s: float, until_idle: bool = False, dashboard_port: int | None = None
) -> int:
    """Run the app's scheduler until a stop signal (or, with ``until_idle``, until
    no task is left unfinished), then drain it; with ``dashboard_port``, serve the
    dashboard beside it on 127.0.0.1."""
    scheduler = app.scheduler
    loop = asyncio.get_running_loop()
    drain = SignalDrain(scheduler, grace_s)
    drain.install(loop)
    try:
        await scheduler.start()
        code = 0
        board: BesideServer | None = None
        try:
            board = await _start_dashboard(scheduler, dashboard_port)
            print(banner(app, grace_s), file=sys.stderr, flush=True)
            if app.on_start is not None:
                await app.on_start(scheduler)
            # A crash of the scheduler's own machinery ends the run too; stop()
            # then raises it, and the exit code is 1.
            waits = [drain.requested.wait(), scheduler.wait_crashed()]
            await _first_of(*waits, *([_idle(scheduler)] if until_idle else []))
        except Exception:
            logger.exception("starting failed (on_start or the dashboard); stopping the worker")
            code = 1
        finally:
            if board is not None:
                await board.stop()
            await drain.drain()
    finally:
        drain.remove(loop)
    left = unfinished(scheduler)
    logger.info("stopped; %s left in the store for the next worker", plural(left, "task"))
    return code


async def _start_dashboard(scheduler: Scheduler, port: int | None) -> BesideServer | None:
    if port is None:
        return None
    from asched.dashboard.serve import BesideServer

    token = os.environ.get("ASCHED_DASHBOARD_TOKEN") or None
    board = BesideServer(scheduler, port, "127.0.0.1", token)
    await board.start()
    logger.info("dashboard on http://127.0.0.1:%d/", port)
    return board


async def _idle(scheduler: Scheduler) -> None:
    # A check a few times a second is plenty for a command-line run, and keeps the
    # engine free of a signal only this option would use.  On a shared store, tasks
    # another (perhaps dead) process leased are unfinished too: wait for the store.
    while unfinished(scheduler) or await _unfinished_in_store(scheduler):  # noqa: ASYNC110
        await asyncio.sleep(0.1 if unfinished(scheduler) else 0.5)
    logger.info("no unfinished tasks left; stopping")


async def _unfinished_in_store(scheduler: Scheduler) -> int:
    if not scheduler.store.durable:
        return 0
    counts = await scheduler.store.count_by_state()
    return sum(counts.get(state, 0) for state in _UNFINISHED)


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(*tasks)


def banner(app: App, grace_s: float) -> str:
    scheduler = app.scheduler
    types = ", ".join(scheduler.task_types) or "none"
    return (
        f"asched worker {app.spec} (pid {os.getpid()}): store {describe_store(scheduler.store)}; "
        f"concurrency {scheduler.config.max_concurrency}; grace {grace_s:g}s; "
        f"task types: {types}; {plural(unfinished(scheduler), 'unfinished task')} recovered"
    )


def unfinished(scheduler: Scheduler) -> int:
    return sum(scheduler.state_count(state) for state in _UNFINISHED)


def run_worker(
    app: App,
    grace_s: float | None,
    log_level: str,
    until_idle: bool = False,
    dashboard_port: int | None = None,
) -> int:
    logging.basicConfig(
        level=log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    grace = app.scheduler.config.grace_period_s if grace_s is None else grace_s
    loop = new_event_loop(use_uvloop=True)
    try:
        return loop.run_until_complete(serve(app, grace, until_idle, dashboard_port))
    except (AschedError, OSError) as exc:
        print(f"asched run: error: {printable(str(exc))}", file=sys.stderr)
        return 1
    finally:
        loop.close()
