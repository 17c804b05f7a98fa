"""Several schedulers on one durable store: leases, heartbeats and polling.

With ``shared_store=True`` an attempt only starts once this process holds a
lease on the task (``Store.claim``), so each attempt runs in one process even
when several have the task armed.  A heartbeat keeps the leases of running
tasks alive; a task whose lease is lost (its owner stalled past the lease, or
died) is taken over by whoever claims it next, with the lost attempt counted.
Writes about a leased task are fenced by its lease token, so a stale owner's
late write changes nothing.  A poller claims due tasks that no process has
armed: tasks other processes scheduled, and those a dead owner left behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from asched.engine import handover
from asched.model import Task
from asched.model.states import QUEUED
from asched.stores.base import Lease

if TYPE_CHECKING:
    from asched.engine.loop import Engine

logger = logging.getLogger(__name__)


class SharedStoreCoordinator:
    def __init__(self, engine: Engine, lease_s: float, poll_s: float) -> None:
        self._engine = engine
        self.owner = engine.owner
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.leases: dict[str, Lease] = {}
        self._waiting: list[Task] = []
        self._claiming = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._heartbeat()), loop.create_task(self._poll())]

    def background_tasks(self) -> list[asyncio.Task[None]]:
        return list(self._tasks)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- claiming before a start --------------------------------------------------------

    def want(self, task: Task, now_s: float) -> None:
        """A due task has a slot: start it once its lease is granted (batched)."""
        if task.id in self.leases:
            if not handover.claim_granted(self._engine, task):
                handover.claim_refused(self._engine, task, taken=False)
            return
        self._waiting.append(task)
        if not self._claiming:
            self._claiming = True
            asyncio.get_running_loop().create_task(self._claim_waiting())

    async def _claim_waiting(self) -> None:
        engine = self._engine
        backoff_s = 0.05
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                now = engine.clock.now()
                try:
                    granted = await engine.store.claim(
                        [t.id for t in batch], self.owner, now, self.lease_s
                    )
                except Exception as exc:
                    if engine.is_closing:  # stopping: the tasks stay in the store, unleased
                        for task in batch + self._waiting:
                            handover.claim_refused(engine, task, taken=False)
                        self._waiting = []
                        return
                    # Keep the batch (and its slots) and try again: nothing is lost.
                    logger.warning(
                        "claiming %d task(s) failed, retrying in %.2fs: %s",
                        len(batch),
                        backoff_s,
                        exc,
                    )
                    self._waiting = batch + self._waiting
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, 2.0)
                    continue
                backoff_s = 0.05
                by_id = {lease.task_id: lease for lease in granted}
                for task in batch:
                    lease = by_id.get(task.id)
                    if lease is not None:
                        self.leases[task.id] = lease
                        if handover.claim_granted(engine, task):
                            continue
                        del self.leases[task.id]  # cancelled or paused meanwhile
                        await engine.store.release([lease])
                    handover.claim_refused(engine, task, taken=lease is None)
        finally:
            self._claiming = False

    def fence_for(self, tasks: Sequence[Task]) -> dict[str, Lease]:
        return {t.id: self.leases[t.id] for t in tasks if t.id in self.leases}

    def written(self, tasks: Sequence[Task], refused: Sequence[str]) -> None:
        """A fenced save went through: a terminal or handed-back task's lease ended."""
        for task in tasks:
            if task.is_terminal or task.lifecycle is QUEUED:
                self.leases.pop(task.id, None)
        if refused:
            self.refused(refused)

    def refused(self, task_ids: Sequence[str]) -> None:
        """Fenced writes were refused: another process holds those tasks now."""
        for task_id in task_ids:
            self.leases.pop(task_id, None)
            handover.lost(self._engine, task_id)

    # -- heartbeat and polling ----------------------------------------------------------

    async def _heartbeat(self) -> None:
        engine = self._engine
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                lost = await engine.store.renew(self.owner, engine.clock.now(), self.lease_s)
            except Exception:
                logger.exception("lease heartbeat failed; retrying")
                continue
            if lost:
                logger.warning("lost the leases of %d task(s): %s", len(lost), lost[:5])
                self.refused(lost)

    async def _poll(self) -> None:
        engine = self._engine
        while True:
            await asyncio.sleep(self.poll_s)
            room = handover.room_to_claim(engine)
            if room <= 0:
                continue
            try:
                found = await engine.store.claim_due(
                    self.owner, engine.clock.now(), self.lease_s, room, handover.active_ids(engine)
                )
            except Exception:
                logger.exception("polling the store for due tasks failed")
                continue
            now = engine.clock.now()
            for lease, task in found:
                if engine.holds(task.id):
                    await engine.store.release([lease])
                    continue
                self.leases[task.id] = lease
                handover.adopt(engine, task, now)

    async def release_idle(self) -> None:
        """On stop: hand back leases of tasks that are not running here."""
        engine = self._engine
        idle = [
            lease
            for task_id, lease in self.leases.items()
            if not handover.running_task(engine, task_id)
        ]
        if idle:
            await engine.store.release(idle)
            for lease in idle:
                self.leases.pop(lease.task_id, None)
