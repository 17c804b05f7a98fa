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
from collections.abc import Callable
from typing import TYPE_CHECKING

from asched.background import cancel_and_wait
from asched.core.checks import require_number
from asched.errors import TaskValidationError

if TYPE_CHECKING:
    from asched.engine.loop import Engine
    from asched.model import Task
    from asched.stores import Store

logger = logging.getLogger(__name__)

#: Rows deleted per store call.
BATCH = 500
#: The longest wait between two passes.
MAX_PERIOD_S = 60.0
#: How often (real time) the service looks at the clock to see if a pass is due.
CHECK_S = 0.1
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
    """The engine service that runs :func:`purge` when a pass is due.

    It arms no timer on the engine's clock (a virtual clock in tests sees no
    extra deadline): it looks at the clock whenever a task settles, and every
    :data:`CHECK_S` of real time."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._runner: asyncio.Task[None] | None = None
        self._pass_task: asyncio.Task[None] | None = None
        self._unhook: Callable[[], None] | None = None
        self._due_s = 0.0
        self.purged = 0

    def period_s(self) -> float | None:
        ttls = [self._engine.config.result_ttl_s, *self._engine.result_ttls.values()]
        known = [t for t in ttls if t is not None]
        if not known:
            return None
        return max(min(*known, MAX_PERIOD_S), _MIN_PERIOD_S)

    async def start(self) -> None:
        now_s = self._engine.clock.now()
        self._due_s = now_s
        period_s = self.period_s()
        if period_s is not None:
            # What expired while no scheduler ran goes before new work comes in (and
            # the first pass's scan never runs in the middle of the first tasks).
            self._due_s = now_s + period_s
            await self._pass(now_s)
        self._runner = asyncio.get_running_loop().create_task(self._tick())
        if self._engine.clock_override is not None:
            # An injected (virtual) clock jumps without real time passing: look at it
            # whenever a task settles too.  On the loop's clock the tick is enough, and
            # the settling path stays free of a hook.
            self._unhook = self._engine.on_settled(self._settled)

    async def stop(self) -> None:
        if self._unhook is not None:
            self._unhook()
            self._unhook = None
        await cancel_and_wait(self._runner, self._pass_task)
        self._runner = self._pass_task = None

    def _settled(self, task: Task) -> None:
        self._maybe_pass()

    async def _tick(self) -> None:
        while True:
            self._maybe_pass()
            await asyncio.sleep(CHECK_S)

    def _maybe_pass(self) -> None:
        now_s = self._engine.clock.now()
        if now_s < self._due_s or (self._pass_task is not None and not self._pass_task.done()):
            return
        period_s = self.period_s()
        if period_s is None:
            return
        self._due_s = now_s + period_s
        self._pass_task = asyncio.get_running_loop().create_task(self._pass(now_s))

    async def _pass(self, now_s: float) -> None:
        engine = self._engine
        try:
            self.purged += await purge(
                engine.store, now_s, engine.config.result_ttl_s, engine.result_ttls
            )
        except Exception as exc:
            logger.warning("purging finished tasks failed; trying again later: %s", exc)
