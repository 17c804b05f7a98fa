"""The user's start rules for the whole cluster: with a shared store, concurrency
limits, rate limits and circuit breakers are decided by the store at claim time.

What holds cluster-wide, and what only per worker:

* **Concurrency limits** (``concurrency_key`` with its key limit, ``limit_key``,
  per-type ``concurrency=``) are slots held in the store: a start-claim takes
  them in the same transaction (SQLite) or script (Redis) as the lease, so at
  most the limit run at once across every worker.  Each worker's own
  :class:`~asched.core.limits.ConcurrencyLimits` still orders and parks its own
  tasks, so a worker asks the store only for tasks its local limits let through.
* **Rate limits** (GCRA) keep their theoretical arrival time per budget in the
  store, checked and advanced at claim time.
* **Circuit breakers** keep their state in the store: outcomes are folded in
  there, an OPEN breaker holds every worker's tasks (SCHEDULED with a
  ``wait_reason``, no attempt spent) and HALF_OPEN admits exactly
  ``half_open_max_calls`` trials across the cluster.  Every worker's poller
  reads the records and announces changes to its own subscribers.
* **Fair share** and dynamic priority order only the tasks one worker holds:
  each worker is fair among its keys, not the cluster as a whole.  The overall
  ``max_concurrency`` is per worker as well.

A task the store holds keeps its lease (no other worker adopts it).  Held for a
full slot or a busy half-open breaker, it keeps its local slot and is claimed
again whenever the store changes (another process wrote, or this one saved an
attempt's end); held by a rate budget or an OPEN breaker, it waits in the timer
wheel until the time the store named.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING

from asched.core.breaker import BreakerSettings, BreakerState, BreakerTransition
from asched.core.claims import BreakerRecord, ClaimNeed, Hold, breaker_outcome
from asched.engine.hub import emit
from asched.events import EVENT_FOR_BREAKER_STATE
from asched.model import Task
from asched.model.states import RETRYING, RUNNING, SCHEDULED
from asched.stores.base import StartClaim

if TYPE_CHECKING:
    from asched.engine.loop import Engine

logger = logging.getLogger(__name__)

_EMPTY = ClaimNeed()


class ClusterRules:
    """The shared-store coordinator's side of the cluster-wide start rules."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        #: task id -> (breaker name, store generation) of starts a breaker admitted
        self.admitted: dict[str, tuple[str, int]] = {}
        #: tasks the store held for a full slot or busy trials: claimed again on change
        self.held: dict[str, Task] = {}
        self.breakers: dict[str, BreakerRecord] = {}
        self._reports: set[asyncio.Task[None]] = set()
        #: called when held tasks may start now (the coordinator claims them again)
        self.on_change: Callable[[], None] = lambda: None
        engine.policies.shared = self.breakers

    def needs(self, tasks: Iterable[Task]) -> dict[str, ClaimNeed]:
        """Each task's slots, rate budget and breaker, as the store should apply them."""
        engine = self._engine
        limits = engine.limits
        types = limits.type_limits
        gated = engine.line.gated
        found: dict[str, ClaimNeed] = {}
        for task in tasks:
            key = task.concurrency_key
            slots: tuple[tuple[str, int], ...] = ()
            if key is not None:
                slots = ((f"key:{key}", limits.key_limits.get(key, limits.default_key_limit)),)
            type_limit = types.get(task.type) if types else None
            if type_limit is not None:
                slots = (*slots, (f"type:{task.type}", type_limit))
            rate = breaker = None
            if task.type in gated:
                rate, breaker = engine.policies.claim_rules(task)
            if slots or rate is not None or breaker is not None:
                found[task.id] = ClaimNeed(slots, rate, breaker)
        return found

    # -- what a claim decided ------------------------------------------------------------

    def settled(self, claim: StartClaim) -> None:
        self.admitted.update(claim.admitted)
        for record in claim.breakers.values():
            self._adopt(record)

    def hold(self, task: Task, hold: Hold) -> None:
        """The store held a task this process wanted to start: no attempt is spent."""
        engine = self._engine
        task.wait_reason = hold.reason
        if hold.wake_at_s is None:
            self.held[task.id] = task  # keeps its local slot; claimed again on change
            return
        engine.release(task)
        engine.line.defer(task, hold.wake_at_s)

    def frees_held(self, tasks: Iterable[Task]) -> bool:
        """Whether an attempt of these that just ended (saved) may free a slot a held
        task waits for: one of the same key or type."""
        held = self.held.values()
        keys = {t.concurrency_key for t in held}
        types = {t.type for t in held}
        return any(
            t.lifecycle is not RUNNING and (t.concurrency_key in keys or t.type in types)
            for t in tasks
        )

    def due_again(self) -> list[Task]:
        """The held tasks to claim again now; those that no longer want to start
        (cancelled, paused) give their local slot back."""
        if not self.held:
            return []
        engine = self._engine
        tasks, self.held = list(self.held.values()), {}
        again = []
        for task in tasks:
            if task.lifecycle in (SCHEDULED, RETRYING) and engine.holds(task.id):
                again.append(task)
            else:
                engine.release(task)
        return again

    # -- breakers: outcomes to the store, changes from it ----------------------------------

    def outcome(self, task: Task, outcome: str, now_s: float) -> None:
        """An admitted start ended: fold its outcome into the shared breaker -- at once
        into this process's copy (so its subscribers and gate learn without waiting),
        and into the store, whose record then replaces the copy."""
        admitted = self.admitted.pop(task.id, None)
        if admitted is None:
            return
        name, generation = admitted
        settings = self._engine.policies.breaker_settings(name)
        seen = self.breakers.get(name)
        if seen is None:
            seen = self.breakers[name] = BreakerRecord(name)
        changes = breaker_outcome(seen, settings, generation, outcome, now_s)
        if changes:
            self._announce(changes)
        self._spawn(self._report(name, settings, generation, outcome, now_s))

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        job = asyncio.get_running_loop().create_task(work)
        self._reports.add(job)
        job.add_done_callback(self._reports.discard)

    async def _report(
        self, name: str, settings: BreakerSettings, generation: int, outcome: str, now_s: float
    ) -> None:
        try:
            record, _ = await self._engine.store.report_breaker(
                name, settings, generation, outcome, now_s
            )
        except Exception as exc:
            logger.warning("reporting to circuit breaker %r failed: %s", name, exc)
            return
        self._adopt(record)

    async def refresh(self) -> None:
        """Read the shared breaker records (other workers change them too)."""
        try:
            records = await self._engine.store.breaker_records()
        except Exception as exc:
            logger.warning("reading the circuit breakers failed: %s", exc)
            return
        for record in records:
            self._adopt(record)

    def _adopt(self, record: BreakerRecord) -> None:
        """The store's record replaces this process's copy; a changed state is announced."""
        seen = self.breakers.get(record.name)
        if seen is not None and (seen.generation, seen.state) == (record.generation, record.state):
            seen.failures, seen.window = record.failures, record.window
            return
        self.breakers[record.name] = record
        before = BreakerState.CLOSED if seen is None else BreakerState(seen.state)
        if before.value != record.state:
            to = BreakerState(record.state)
            self._announce(
                [BreakerTransition(record.name, before, to, record.changed_s, record.reason)]
            )
        elif self.held:
            self.on_change()  # trials may be free again

    def _announce(self, changes: list[BreakerTransition]) -> None:
        """Tell this process's subscribers; wake the tasks that wait on those breakers."""
        engine = self._engine
        listeners = engine.hub.all
        now = engine.clock.now()
        for change in changes:
            if listeners:
                event = EVENT_FOR_BREAKER_STATE[change.to_state]
                emit(
                    listeners,
                    event(
                        change.name, change.from_state, change.to_state, change.at, change.reason
                    ),
                )
            if engine.line.wake_breaker(change.name, now):
                engine.request_dispatch()
        if self.held:  # trials may be free again
            self.on_change()

    def start(self) -> None:
        self._spawn(self.refresh())

    async def stop(self) -> None:
        if self._reports:
            await asyncio.gather(*self._reports, return_exceptions=True)
