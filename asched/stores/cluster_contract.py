"""The Store contract's cluster sections, mixed into :class:`asched.stores.base.Store`.

What lets several workers on one store act as one cluster: the user's start
rules applied inside the start-claim (concurrency slots, GCRA rate budgets,
shared circuit breakers), schedule records written by revision, control
requests for tasks another worker holds, and the worker registry.  The rules
themselves are pure (:mod:`asched.core.claims`); a store keeps their state.
Import these names from :mod:`asched.stores.base`, which re-exports them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from asched.core.breaker import BreakerSettings, BreakerTransition
from asched.core.claims import OUTCOMES, BreakerRecord, ClaimNeed
from asched.errors import TaskValidationError
from asched.stores.leases import HeldLeases, Lease, StartClaim, check_lease_s, check_owner

#: What each task of a start-claim needs besides its lease, by task id.
Needs = Mapping[str, ClaimNeed]
#: A breaker's record after an outcome, and the state changes the outcome made.
BreakerReport = tuple[BreakerRecord, list[BreakerTransition]]

#: What a control request may ask of the worker holding a task.
CONTROL_ACTIONS = frozenset({"cancel", "pause", "resume"})


def worker_status(record: Mapping[str, Any], now_s: float) -> str:
    """``"live"`` while the worker's last beat is within its lease, else ``"lost"``."""
    lease_s = float(record.get("lease_s") or 30.0)
    return "live" if now_s - float(record.get("heartbeat_s", 0.0)) <= lease_s else "lost"


class ClusterContract(ABC):
    """The cluster steps of the Store contract; :class:`Store` inherits them."""

    _held: HeldLeases

    @abstractmethod
    async def _claim_start(
        self, task_ids: list[str], owner: str, now_s: float, expires_s: float
    ) -> list[Lease]:
        """Lease and record RUNNING (see :meth:`asched.stores.base.Store._claim_start`)."""

    # -- cluster-wide start rules: concurrency slots, rate budgets, breakers -------------
    #
    # The rules themselves are pure (asched.core.claims.plan_claims); a store keeps
    # their state and applies them atomically inside the start-claim, so they hold
    # for every worker on the store.  A slot granted with a start is held while the
    # task is stored RUNNING under that very lease: a save of any other state, the
    # lease ending (a lease-ending save, ``release``, expiry) or another claim taking
    # the task over frees it.

    async def claim_start_limited(
        self, task_ids: Sequence[str], owner: str, now_s: float, lease_s: float, needs: Needs
    ) -> StartClaim:
        """:meth:`claim_start`, where each task of ``needs`` starts only if its slots
        have room, its rate budget allows a call and its breaker admits it -- decided
        in the same transaction as the lease, best first in ``task_ids`` order.  A
        free task a rule holds is leased to ``owner`` without being started (nothing
        else changes; a RUNNING row's lost attempt is counted as a crash as by
        ``claim_start``) and returned in ``held`` with the reason."""
        expires_s = now_s + check_lease_s(lease_s)
        check_owner(owner)
        if not task_ids:
            return StartClaim()
        ids = list(dict.fromkeys(task_ids))
        if not any(needs.get(task_id) for task_id in ids):
            granted = await self._claim_start(ids, owner, now_s, expires_s)
            self._held.grant(granted)
            return StartClaim(granted)
        claim = await self._claim_start_limited(ids, owner, now_s, expires_s, needs)
        self._held.grant(claim.granted)
        self._held.grant(lease for lease, _ in claim.held)
        return claim

    @abstractmethod
    async def _claim_start_limited(
        self, task_ids: list[str], owner: str, now_s: float, expires_s: float, needs: Needs
    ) -> StartClaim: ...

    async def slots_held(self, names: Collection[str], now_s: float) -> dict[str, int]:
        """How many tasks hold each slot name now (names none holds are left out)."""
        return await self._slots_held(sorted(set(names)), now_s)

    @abstractmethod
    async def _slots_held(self, names: list[str], now_s: float) -> dict[str, int]: ...

    async def report_breaker(
        self, name: str, settings: BreakerSettings, generation: int, outcome: str, now_s: float
    ) -> BreakerReport:
        """Fold the outcome (``succeeded``, ``failed``, ``abandoned``) of a start the
        breaker ``name`` admitted in ``generation`` into its shared record, atomically
        (asched.core.claims.breaker_outcome).  Returns the record as it is now and
        the state changes this made."""
        if outcome not in OUTCOMES:
            raise TaskValidationError("outcome", outcome, f"expected one of {OUTCOMES}")
        return await self._report_breaker(name, settings, int(generation), outcome, now_s)

    @abstractmethod
    async def _report_breaker(
        self, name: str, settings: BreakerSettings, generation: int, outcome: str, now_s: float
    ) -> BreakerReport: ...

    @abstractmethod
    async def breaker_records(self) -> list[BreakerRecord]:
        """Every shared breaker's record, as last written (an OPEN one past its
        ``open_until_s`` turns HALF_OPEN at the next claim that passes it)."""

    # -- cluster: schedules seen by every worker -------------------------------------------
    #
    # A schedule's definition is written once per change (create, update, pause,
    # resume, remove); each change bumps the record's ``"revision"``.  Workers write
    # their progress (fires run, counters) only onto the revision they read, so a
    # late progress write never brings back a removed schedule or undoes a pause.

    @abstractmethod
    async def create_schedule(self, record: dict[str, Any]) -> dict[str, Any] | None:
        """Store ``record`` unless a schedule with its ``"id"`` exists, atomically.
        Returns None when it was stored, else the stored record (nothing written)."""

    @abstractmethod
    async def save_schedule_progress(self, records: Sequence[dict[str, Any]]) -> list[str]:
        """Replace each stored record whose ``"revision"`` equals the given one's.
        Returns the ids not written (removed, or redefined since they were read)."""

    @abstractmethod
    async def unfinished_ids(self, prefix: str) -> list[str]:
        """Ids of the unfinished tasks whose id starts with ``prefix`` (a schedule's
        fires are ``"<schedule id>@<ms>"``: its instances across the cluster)."""

    # -- cluster: control requests for tasks another worker holds --------------------------
    #
    # A cancel, pause or resume of a task leased by another worker is a request
    # record, one per task (a later request replaces an earlier one, but nothing
    # replaces a cancel).  The owner's poller takes the requests for the tasks it
    # leases and carries them out.

    async def request_control(self, task_id: str, request: dict[str, Any]) -> None:
        """Record a request (``"action"``: ``"cancel"``, ``"pause"`` or ``"resume"``,
        plus who asked) for ``task_id``, for whichever worker holds its lease."""
        action = request.get("action")
        if action not in CONTROL_ACTIONS:
            raise TaskValidationError("action", action, "expected cancel, pause or resume")
        await self._request_control(task_id, {**request, "task_id": task_id})

    async def take_control_requests(self, owner: str) -> list[dict[str, Any]]:
        """Remove and return the requests for tasks ``owner`` leases (valid lease or
        not); requests for finished or vanished tasks are dropped."""
        return await self._take_control_requests(check_owner(owner))

    @abstractmethod
    async def _request_control(self, task_id: str, request: dict[str, Any]) -> None: ...

    @abstractmethod
    async def _take_control_requests(self, owner: str) -> list[dict[str, Any]]: ...

    # -- cluster: the worker registry --------------------------------------------------------
    #
    # Each worker keeps a record (``"id"``, ``"host"``, ``"pid"``, ``"started_s"``,
    # ``"heartbeat_s"``, ``"running"``, ``"version"``, ``"lease_s"``) and beats with
    # its lease heartbeat.  Readers call a worker lost when its last beat is older
    # than its lease (see :func:`worker_status`); its leases expire with it.

    async def register_worker(self, record: dict[str, Any]) -> None:
        """Insert or replace a worker's record, keyed by its ``"id"``."""
        check_owner(record.get("id"))
        await self._put_worker(dict(record))

    async def heartbeat_worker(
        self,
        worker_id: str,
        now_s: float,
        running: int,
        figures: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record a beat, and the worker's load ``figures`` (JSON-able; kept as the
        record's ``"figures"``, replacing the last); False when the worker has no
        record (it was removed)."""
        return await self._beat_worker(
            check_owner(worker_id),
            float(now_s),
            int(running),
            None if figures is None else dict(figures),
        )

    @abstractmethod
    async def list_workers(self) -> list[dict[str, Any]]:
        """Every registered worker's record, oldest start first."""

    @abstractmethod
    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker (it stopped); an unknown id is ignored."""

    @abstractmethod
    async def _put_worker(self, record: dict[str, Any]) -> None: ...

    @abstractmethod
    async def _beat_worker(
        self, worker_id: str, now_s: float, running: int, figures: dict[str, Any] | None
    ) -> bool: ...
