"""Several schedulers on one durable store: leases, heartbeats and polling.

A durable store is always shared: an attempt only starts once this process
holds a lease on the task, taken by ``Store.claim_start``, which records the
task RUNNING in the same write.  So each attempt runs in one process even when
several have the task armed, and every attempt is on disk before its handler
runs: a handler that kills its worker is counted by the next claim (see
:func:`asched.engine.handover.adopt`) instead of looping forever.

Heartbeats.  The loop renews its leases every ``lease_s / 3`` and learns which
it lost.  A loop blocked by a handler cannot do that, so a thread also extends
the leases every ``lease_s / 3`` (``Store.keep_alive``) -- but only while the
loop is alive: a watchdog stops the thread renewing once the loop has not ticked
for ``stall_s`` (``max(3 * lease_s, 10 s)``), so a truly wedged worker loses
its tasks to the others (the thread: :mod:`asched.engine.keepalive`).

Polling.  A poller claims due tasks that no process has armed here: tasks other
processes scheduled, and those a dead owner left behind.  It also reads how
dependencies that ran in another process ended, and releases (or cancels) the
tasks held here that wait on them; after each round it does this worker's
cluster duties (:mod:`asched.engine.cluster`: cancel and pause requests for the
tasks it leases, live schedules, the sweep of stored dependants).  Where the store can
tell that another process wrote (SQLite: ``PRAGMA data_version``), it checks
every 50 ms and claims at once, so work another process adds is picked up
within about 50 ms plus a commit; otherwise it polls every ``poll_interval_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from asched.background import cancel_and_wait
from asched.clock import monotonic
from asched.core.claims import Hold
from asched.engine import cluster_deps, dependents, handover
from asched.engine.cluster import ClusterDuties
from asched.engine.cluster_rules import ClusterRules
from asched.engine.keepalive import KeepAlive
from asched.model import Task
from asched.model.states import QUEUED, RETRYING, SCHEDULED
from asched.stores.base import Lease, StartClaim

if TYPE_CHECKING:
    from asched.engine.loop import Engine

logger = logging.getLogger(__name__)

#: How often the poller asks the store whether another process wrote.
WATCH_S = 0.05


class SharedStoreCoordinator:
    def __init__(self, engine: Engine, lease_s: float, poll_s: float) -> None:
        self._engine = engine
        self.owner = engine.owner
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.stall_s = max(3 * lease_s, 10.0)
        self.leases: dict[str, Lease] = {}
        self._waiting: list[Task] = []
        self._claiming = False
        self._tasks: list[asyncio.Task[None]] = []
        self._keeper: KeepAlive | None = None
        #: the last claim_due filled every free slot: there may be more due work
        self._backlog = False
        self._room = asyncio.Event()
        self.cluster = ClusterDuties(engine, lease_s)
        self._checks: set[asyncio.Task[None]] = set()
        self.rules = ClusterRules(engine)
        self.rules.on_change = self._claim_held

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._heartbeat()),
            loop.create_task(self._poll()),
        ]
        if self._engine.line.gated:
            self.rules.start()  # learn the cluster's breakers before the first claim
        self._keeper = KeepAlive(self)
        self._tasks.append(loop.create_task(self._keeper.tick_forever()))
        self.cluster.follow(self._sweep_dependants, cluster_deps.SWEEP_EVERY_S)
        self._keeper.start()
        for task in self._tasks:
            task.add_done_callback(_report_death)

    def background_tasks(self) -> list[asyncio.Task[None]]:
        return list(self._tasks)

    async def stop(self) -> None:
        await self.rules.stop()
        if self._keeper is not None:
            await asyncio.to_thread(self._keeper.stop)
            self._keeper = None
        await cancel_and_wait(*self._tasks)
        self._tasks = []

    # -- claiming before a start --------------------------------------------------------

    def want(self, task: Task, now_s: float) -> None:
        """A due task has a slot: start it once its start-claim commits (batched)."""
        if not handover.runs_here(self._engine, task):
            handover.pass_on(self._engine, task)
            return
        if task.dependencies:  # read them first: they may have run anywhere
            check = asyncio.get_running_loop().create_task(self._want_checked(task))
            self._checks.add(check)
            check.add_done_callback(self._checks.discard)
            return
        self._waiting.append(task)
        if not self._claiming:
            self._claiming = True
            asyncio.get_running_loop().create_task(self._claim_waiting())

    async def _want_checked(self, task: Task) -> None:
        engine = self._engine
        try:
            ready = await cluster_deps.ready_to_start(engine, task)
        except Exception as exc:  # the store is away: try again in a second
            logger.warning("task %s: reading its dependencies failed: %s", task.id, exc)
            handover.claim_refused(engine, task, taken=False)
            task._handle = engine.wheel.insert(engine.clock.now() + 1.0, task)
            return
        if ready and task.lifecycle in (SCHEDULED, RETRYING) and engine.holds(task.id):
            self._waiting.append(task)
            if not self._claiming:
                self._claiming = True
                await self._claim_waiting()

    async def _claim_waiting(self) -> None:
        engine = self._engine
        backoff_s = 0.05
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    claim = await engine.store.claim_start_limited(
                        [t.id for t in batch],
                        self.owner,
                        engine.clock.now(),
                        self.lease_s,
                        self.rules.needs(batch),
                    )
                except Exception as exc:
                    if engine.is_closing:  # stopping: the tasks stay in the store
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
                stale = self._settle_claims(batch, claim)
                if stale:  # leases taken by the poller for tasks that cannot start
                    await engine.store.release(stale)
        finally:
            self._claiming = False

    def _settle_claims(self, batch: list[Task], claim: StartClaim) -> list[Lease]:
        """Start what was granted, hold what a rule held; give back the rest.
        Returns the leases this process still held on refused tasks, for release."""
        engine = self._engine
        by_id = {lease.task_id: lease for lease in claim.granted}
        holds = {lease.task_id: (lease, hold) for lease, hold in claim.held}
        self.rules.settled(claim)
        stale: list[Lease] = []
        for task in batch:
            lease = by_id.get(task.id)
            if holds and task.id in holds:
                self._held_by_rule(task, *holds[task.id])
                continue
            try:
                if lease is not None:
                    self.leases[task.id] = lease
                    if handover.claim_granted(engine, task, lease):
                        continue
                    # Cancelled or paused meanwhile: the store says RUNNING now, so
                    # write the task's real state under the lease (terminal ends it).
                    engine.touch(task)
                else:
                    held = self.leases.pop(task.id, None)
                    if held is not None:
                        stale.append(held)
                handover.claim_refused(engine, task, taken=lease is None)
            except Exception:  # one task's trouble must not strand the rest of the batch
                logger.exception("task %s: starting it after its claim failed", task.id)
        return stale

    def _held_by_rule(self, task: Task, lease: Lease, hold: Hold) -> None:
        """A rule held the task: it waits (leased here), or, if cancelled or paused
        meanwhile, gives its slot back and has its state written."""
        self.leases[task.id] = lease
        if task.lifecycle in (SCHEDULED, RETRYING):
            self.rules.hold(task, hold)
            return
        self._engine.touch(task)
        handover.claim_refused(self._engine, task, taken=False)

    def fence_for(self, tasks: Sequence[Task]) -> dict[str, Lease]:
        return {t.id: self.leases[t.id] for t in tasks if t.id in self.leases}

    def written(
        self, tasks: Sequence[Task], refused: Sequence[str], fences: Mapping[str, Lease]
    ) -> None:
        """A fenced save went through: a terminal or handed-back task's lease ended."""
        again: set[str] = set()
        if refused:
            again = handover.outrun(self._engine, self.leases, refused, fences)
            if again:
                refused = [task_id for task_id in refused if task_id not in again]
        for task in tasks:
            if (task.is_terminal or task.lifecycle is QUEUED) and task.id not in again:
                self.leases.pop(task.id, None)
                if self._backlog:
                    self._room.set()  # slots are free and the store has more due work
        if refused:
            self.refused(refused)
        if self.rules.held and self.rules.frees_held(tasks):
            self._claim_held()  # an attempt's end is on disk: its slot is free

    def _claim_held(self) -> None:
        """Claim again the tasks the store held for a full slot or busy trials."""
        again = self.rules.due_again()
        if not again:
            return
        self._waiting.extend(again)
        if not self._claiming:
            self._claiming = True
            asyncio.get_running_loop().create_task(self._claim_waiting())

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
            try:
                await self.cluster.beat()
            except Exception:
                logger.exception("worker heartbeat failed; retrying")
            lost = [task_id for task_id in lost if task_id in self.leases]
            if lost:
                logger.warning("lost the leases of %d task(s): %s", len(lost), lost[:5])
                self.refused(lost)

    async def _poll(self) -> None:
        store = self._engine.store
        last_s = monotonic()
        watching = True
        while True:
            more = await self._room_or_sleep(WATCH_S if watching else self.poll_s)
            if not more and watching and monotonic() - last_s < self.poll_s:
                try:
                    changed = await store.changed_elsewhere()
                except Exception:
                    changed = True
                if changed is None:
                    watching = False
                elif not changed:
                    continue
            last_s = monotonic()
            try:
                while await self._claim_due() and watching:
                    pass  # a full batch: there may be more
                await self._settle_foreign_dependencies()
                await self.cluster.after_round()
                if self._engine.line.gated:
                    await self.rules.refresh()
                self._claim_held()
            except Exception:  # keep polling: one bad round must not end it
                logger.exception("polling the store failed; trying again")

    async def _settle_foreign_dependencies(self) -> None:
        """Tasks held here that wait on a task another process ran: read how it
        ended from the store, and release or cancel them as if it had ended here."""
        engine = self._engine
        active = engine.active
        # From the dependencies, not the active tasks: most tasks wait on nothing.
        elsewhere = [
            dep
            for dep, dependents in engine.deps.awaited()
            if dep not in active and any(task_id in active for task_id in dependents)
        ]
        for dep in elsewhere:
            try:
                stored = await engine.store.get(dep)
            except Exception as exc:
                logger.warning("reading dependency %s failed: %s", dep, exc)
                return
            if stored is not None and stored.is_terminal and dep not in engine.active:
                dependents.settle(engine, stored)

    async def _sweep_dependants(self) -> None:
        await cluster_deps.sweep(self, self._engine)

    async def _room_or_sleep(self, timeout_s: float) -> bool:
        """Sleep ``timeout_s``, or less if slots free up while the store had more
        due work than room (True then: claim at once)."""
        self._room.clear()
        try:
            async with asyncio.timeout(timeout_s):
                await self._room.wait()
        except TimeoutError:
            return False
        return True

    async def _claim_due(self) -> bool:
        """Claim what room allows; True when the batch was full."""
        engine = self._engine
        room = handover.room_to_claim(engine)
        if room <= 0:
            return False
        try:
            found = await engine.store.claim_due(
                self.owner,
                engine.clock.now(),
                self.lease_s,
                room,
                handover.active_ids(engine),
                task_types=engine.registry.names(),
            )
        except Exception:
            logger.exception("polling the store for due tasks failed")
            return False
        now = engine.clock.now()
        for lease, task in found:
            if engine.holds(task.id):
                await engine.store.release([lease])
                continue
            if not handover.runs_here(engine, task):
                await engine.store.release([lease])
                continue
            self.leases[task.id] = lease
            handover.adopt(engine, task, lease, now)
        self._backlog = len(found) >= room
        return self._backlog

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


def _report_death(task: asyncio.Task[None]) -> None:
    """These run until stop() cancels them: any other end is a bug, said out loud."""
    if not task.cancelled() and task.exception() is not None:
        logger.critical(
            "shared-store coroutine %s died; this worker no longer claims or renews",
            task.get_coro(),
            exc_info=task.exception(),
        )
