"""Retention: finished tasks are removed from the store once they are old enough.

A task that finished (COMPLETED, FAILED, CANCELLED) more than ``result_ttl_s``
ago is deleted, in batches of :data:`BATCH` so no purge holds the store for
long.  A pass runs at start and then every ``min(ttl, 60 s)`` (the shortest
of the configured and per-type ttls).  ``result_ttl_s=None`` keeps tasks
forever; a task type may override the ttl (``@scheduler.task(...,
result_ttl_s=...)``).  Every process on a shared store purges; deleting is
idempotent, so they do not get in each other's way.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from asched.clock import TimerHandle
from asched.core.checks import require_number
from asched.errors import TaskValidationError

if TYPE_CHECKING:
    from asched.engine.loop import Engine
    from asched.stores import Store

logger = logging.getLogger(__name__)

#: Rows deleted per store call.
BATCH = 500
#: The longest wait between two passes.
MAX_PERIOD_S = 60.0
_MIN_PERIOD_S = 0.05
_MAX_TTL_S = 3653 * 86400.0


def check_ttl(value: object) -> float | None:
    """A ``result_ttl_s`` value: None (keep forever) or seconds, 0 to 10 years."""
    if value is None:
        return None
    return require_number(
        "result_ttl_s", value, minimum=0, maximum=_MAX_TTL_S, error=TaskValidationError
    )


async def purge(
    store: Store,
    now_s: float,
    default_ttl_s: float | None,
    type_ttls: dict[str, float | None],
) -> int:
    """Delete every finished task past its ttl, batch by batch; how many went."""
    total = 0
    for task_type, ttl_s in type_ttls.items():
        if ttl_s is not None:
            total += await _purge_all(store, now_s - ttl_s, [task_type], ())
    if default_ttl_s is not None:
        total += await _purge_all(store, now_s - default_ttl_s, None, list(type_ttls))
    return total


async def _purge_all(
    store: Store, before_s: float, only: list[str] | None, skip: list[str] | tuple[()]
) -> int:
    total = 0
    while True:
        deleted = await store.purge_finished(before_s, BATCH, only, skip)
        total += deleted
        if deleted < BATCH:
            return total
        await asyncio.sleep(0)  # let the loop breathe between batches


class Retention:
    """The engine service that runs :func:`purge` on a timer."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._timer: TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None
        self.purged = 0

    def period_s(self) -> float | None:
        ttls = [self._engine.config.result_ttl_s, *self._engine.result_ttls.values()]
        known = [t for t in ttls if t is not None]
        if not known:
            return None
        return max(min(*known, MAX_PERIOD_S), _MIN_PERIOD_S)

    async def start(self) -> None:
        self._arm(self._engine.clock.now())

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        running = self._running
        if running is not None:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            self._running = None

    def _arm(self, when_s: float) -> None:
        if self.period_s() is not None:
            self._timer = self._engine.clock.call_at(when_s, self._due)

    def _due(self) -> None:
        self._timer = None
        if self._running is None or self._running.done():
            self._running = asyncio.get_running_loop().create_task(self._pass())

    async def _pass(self) -> None:
        engine = self._engine
        now_s = engine.clock.now()
        try:
            self.purged += await purge(
                engine.store, now_s, engine.config.result_ttl_s, engine.result_ttls
            )
        except Exception as exc:
            logger.warning("purging finished tasks failed; trying again later: %s", exc)
        period_s = self.period_s()
        if period_s is not None and not engine.is_closing:
            self._arm(now_s + period_s)
