"""Background coroutines the scheduler cannot work without, and what their death means.

The write-back flusher, the shared-store heartbeat and poller, the metrics
folder and a store's own writer each run as an asyncio task for as long as
the scheduler runs.  If one ends with an error (or ends at all while the
scheduler is running), the scheduler fails loudly instead of hanging: it
logs the error, takes no more work, every caller (``schedule_task``,
``wait_for``, ...) gets a :class:`SchedulerCrashedError` naming what died,
and ``stop()`` cleans up what it can and then raises that error too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from asched.errors import SchedulerCrashedError

if TYPE_CHECKING:
    from asched.engine.loop import Engine

logger = logging.getLogger(__name__)


def watch(engine: Engine, tasks: Iterable[asyncio.Task[Any]], what: str) -> None:
    """Fail the engine if one of ``tasks`` ends while it is running."""
    for task in tasks:
        task.add_done_callback(lambda done: _ended(engine, done, what))


def watch_component(engine: Engine, component: object, what: str) -> None:
    """Watch what a component reports through ``background_tasks()``, if it has any."""
    reporter = getattr(component, "background_tasks", None)
    if reporter is not None:
        watch(engine, reporter(), what)


def _ended(engine: Engine, task: asyncio.Task[Any], what: str) -> None:
    if task.cancelled() or engine.is_closing:
        return  # stopped on purpose
    error = task.exception()
    if error is None and not engine.is_running:
        return
    fail(engine, what, error)


def fail(engine: Engine, what: str, error: BaseException | None) -> None:
    """The engine cannot go on: refuse work, wake every waiter with the error."""
    if engine.failure is not None:
        return
    failure = SchedulerCrashedError(what, error)
    engine.failure = failure
    logger.critical("%s; stop the scheduler and restart it", failure, exc_info=error)
    engine.is_running = False
    engine.is_closing = True  # no new attempts start; stop() still cleans up
    for futures in engine.waiters.values():
        for future in futures:
            if not future.done():
                future.set_exception(failure)
    engine.waiters.clear()
    if engine.crashed is not None and not engine.crashed.done():
        engine.crashed.set_result(failure)
