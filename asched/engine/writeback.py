"""Keeping the store in step with the loop.

A changed task is marked dirty; a background flusher writes every dirty task
in one batch per loop iteration, so a durable store group-commits what one
iteration changed.  On a store error the batch is kept and retried with
backoff: no acknowledged change is dropped.  With a shared store each write
is fenced by the task's lease, and the coordinator learns what was refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from asched.background import cancel_and_wait
from asched.model import Task
from asched.stores import Lease, Store

logger = logging.getLogger(__name__)

_BACKOFF_MIN_S = 0.05
_BACKOFF_MAX_S = 5.0


class Fence(Protocol):
    """What the write-back asks of the shared-store coordinator."""

    def fence_for(self, tasks: Sequence[Task]) -> Mapping[str, Lease]: ...

    def written(
        self, tasks: Sequence[Task], refused: Sequence[str], fences: Mapping[str, Lease]
    ) -> None: ...


class WriteBack:
    __slots__ = ("_flusher", "_wanted", "dirty", "errors", "fence", "store")

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dirty: dict[str, Task] = {}
        self.fence: Fence | None = None
        self.errors = 0
        self._wanted = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._wanted = asyncio.Event()
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())
        self._flusher.add_done_callback(_report_death)

    def background_tasks(self) -> list[asyncio.Task[None]]:
        return [] if self._flusher is None else [self._flusher]

    async def stop(self) -> None:
        """Stop the flusher and write what is still dirty."""
        await cancel_and_wait(self._flusher)
        self._flusher = None
        await self.flush()

    def touch(self, task: Task) -> None:
        """The task's stored copy is stale; the flusher writes it soon."""
        self.dirty[task.id] = task
        self._wanted.set()

    async def _flush_forever(self) -> None:
        backoff_s = _BACKOFF_MIN_S
        while True:
            await self._wanted.wait()
            try:
                await self.flush()
            except Exception as exc:
                self.errors += 1
                logger.error(
                    "saving %d task(s) failed, retrying in %.2fs: %s",
                    len(self.dirty),
                    backoff_s,
                    exc,
                )
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, _BACKOFF_MAX_S)
                self._wanted.set()
            else:
                backoff_s = _BACKOFF_MIN_S

    async def flush(self) -> None:
        self._wanted.clear()
        if not self.dirty:
            return
        batch = list(self.dirty.values())
        self.dirty.clear()
        fence = self.fence
        fences = fence.fence_for(batch) if fence is not None else None
        try:
            refused = await self.store.save(batch, fences)
        except BaseException:
            for task in batch:
                self.dirty.setdefault(task.id, task)
            raise
        if fence is not None and fences is not None:
            fence.written(batch, refused, fences)


def _report_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.critical(
            "the write-back flusher died; changes are no longer saved",
            exc_info=task.exception(),
        )
