"""The Store contract every backend implements (memory, SQLite, Redis).

The scheduler's loop owns task state; a store keeps it.  All writes are
batches (``insert`` and ``save`` take sequences) so a durable backend can
group-commit everything one loop iteration changed in one transaction.

Several schedulers on one shared store coordinate through leases.  A claim
never deletes anything: it records (owner, token, expiry) on the task.
``claim``/``claim_due`` take free tasks, ``renew`` is the heartbeat that keeps
them, ``release`` hands them back without spending an attempt.  Every
``save`` made under a lease is fenced by its token, so a stale owner's late
write changes nothing and is reported back.

A task is *free* for an owner when it is not terminal and no other owner holds
a lease on it that is still valid (``expires_s > now_s``).  A task's token
strictly increases with every successful claim and is never reset, so a lease
that was taken over can never match again.  A lease ends when a save makes the
task terminal or QUEUED, by ``release``, or when ``renew`` finds it expired.

Starting an attempt is a claim too: ``claim_start`` leases the tasks and, in
the same write, records them RUNNING, so a worker that dies inside a handler
leaves a RUNNING row whose lease runs out.  The next claim of such a row counts
a *crash* (``Lease.crashes``): that is how a task that kills its worker every
time is stopped after ``max_retries`` crashes instead of looping forever.

The user's start rules hold for every owner because a store applies them inside
the start-claim (``claim_start_limited``): concurrency slots, GCRA rate budgets
and shared circuit breakers, decided by :mod:`asched.core.claims`.  Those and
the other cluster steps are in :mod:`asched.stores.cluster_contract`.

A finished task (COMPLETED, FAILED, CANCELLED) is never written again, by any
save, fenced or not.  Finished tasks are removed by ``purge_finished``.

Payloads: task data and results larger than ``max_payload_bytes`` (as JSON)
are refused with :class:`TaskValidationError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Collection, Mapping, Sequence
from typing import Any

import orjson

from asched.errors import TaskValidationError
from asched.model import Task, TaskLifecycle
from asched.stores.cluster_contract import (
    CONTROL_ACTIONS,
    BreakerReport,
    ClusterContract,
    Needs,
    worker_status,
)
from asched.stores.leases import (
    HeldLeases,
    Lease,
    StartClaim,
    check_lease_s,
    check_limit,
    check_owner,
)

__all__ = [
    "CLAIMABLE_STATES",
    "CONTROL_ACTIONS",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "LEASE_ENDING_STATES",
    "BreakerReport",
    "ClusterContract",
    "Lease",
    "Needs",
    "StartClaim",
    "Store",
    "worker_status",
]

#: The default limit on task data and on a result, as JSON: 1 MiB.
DEFAULT_MAX_PAYLOAD_BYTES = 1 << 20


def check_payload(field: str, encoded: bytes | str, limit: int) -> None:
    """Refuse a payload (already JSON) above ``limit`` bytes, naming the field."""
    if len(encoded) > limit:
        raise TaskValidationError(
            field, f"<{len(encoded)} bytes>", f"larger than max_payload_bytes ({limit})"
        )


#: States ``claim_due`` takes a due task from (RUNNING only once its lease has
#: expired, which every state here needs anyway: its owner is presumed dead).
CLAIMABLE_STATES = frozenset(
    {TaskLifecycle.QUEUED, TaskLifecycle.SCHEDULED, TaskLifecycle.RETRYING, TaskLifecycle.RUNNING}
)
#: States whose save ends the lease: the task is finished, or handed back.
LEASE_ENDING_STATES = frozenset(
    {TaskLifecycle.QUEUED, TaskLifecycle.COMPLETED, TaskLifecycle.FAILED, TaskLifecycle.CANCELLED}
)


def result_problem(result: Any, limit: int) -> str | None:
    """Why a handler's result cannot be stored (not JSON, nested too deep, larger
    than ``limit`` bytes), or None when it can."""
    try:
        size = len(orjson.dumps(result))
    except (TypeError, RecursionError, ValueError, OverflowError) as exc:
        return f"result cannot be stored: {type(exc).__name__}: {str(exc)[:200]}"
    if size > limit:
        return f"result cannot be stored: {size} bytes, larger than max_payload_bytes ({limit})"
    return None


class Store(ClusterContract, ABC):
    """Persistence for tasks.  Methods are called from the scheduler's loop only.

    The cluster steps (start rules, schedules by revision, control requests, the
    worker registry) are inherited from :class:`ClusterContract`."""

    #: True when an acknowledged write survives a crash of this process.
    durable: bool = False
    #: True when ``get`` returns the very objects the scheduler mutates, so
    #: ``save`` has nothing to do.
    shares_objects: bool = False

    #: Task data and results above this many bytes of JSON are refused (the
    #: scheduler sets it from ``SchedulerConfig.max_payload_bytes``).
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES

    def __init__(self) -> None:
        self._held = HeldLeases()

    async def open(self) -> None:
        """Connect, create or migrate the schema."""

    async def close(self) -> None:
        """Flush and release resources."""

    @abstractmethod
    async def insert(self, tasks: Sequence[Task]) -> None:
        """Add new tasks, all or nothing.  A duplicate id or idempotency key fails the batch."""

    def insert_soon(self, tasks: Sequence[Task]) -> Awaitable[None]:
        """:meth:`insert`, as an awaitable that a store may hand back without a
        coroutine of its own: one awaited frame less for every task in flight."""
        return self.insert(tasks)

    @abstractmethod
    async def save(
        self, tasks: Sequence[Task], leases: Mapping[str, Lease] | None = None
    ) -> list[str]:
        """Persist the current state of tasks already inserted.

        A task whose id is in ``leases`` is written only while that very lease
        is held (same owner and token); otherwise nothing of it changes and its
        id is returned.  Any save that leaves a task terminal or QUEUED also
        ends its lease.  Returns the ids whose fenced write was refused."""

    @abstractmethod
    async def get(self, task_id: str) -> Task | None: ...

    @abstractmethod
    async def find_by_idempotency_key(self, key: str) -> str | None: ...

    @abstractmethod
    async def list_tasks(
        self,
        status: TaskLifecycle | None = None,
        task_type: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        """Tasks ordered by due time, filtered by state and type."""

    @abstractmethod
    async def load_unfinished(self) -> list[Task]:
        """Every task not in a terminal state, for re-arming after a restart."""

    @abstractmethod
    async def count_by_state(self) -> dict[TaskLifecycle, int]: ...

    # -- leases: the public calls keep the books, a backend does the small steps --------

    async def claim(
        self, task_ids: Sequence[str], owner: str, now_s: float, lease_s: float
    ) -> list[Lease]:
        """Atomically lease those of ``task_ids`` that are free for ``owner`` (one it
        already holds is re-leased with a new token).  Returns the leases granted,
        in any order; the others are simply absent."""
        expires_s = now_s + check_lease_s(lease_s)
        check_owner(owner)
        if not task_ids:
            return []
        granted = await self._claim(list(dict.fromkeys(task_ids)), owner, now_s, expires_s)
        self._held.grant(granted)
        return granted

    async def claim_start(
        self, task_ids: Sequence[str], owner: str, now_s: float, lease_s: float
    ) -> list[Lease]:
        """:meth:`claim` for attempts about to start: in the same write, each granted
        task is recorded RUNNING, so the attempt is on disk before its handler
        runs.  A task found RUNNING under a lease that is not ``owner``'s valid one
        counts a crash first; each lease carries the task's crash count."""
        expires_s = now_s + check_lease_s(lease_s)
        check_owner(owner)
        if not task_ids:
            return []
        granted = await self._claim_start(list(dict.fromkeys(task_ids)), owner, now_s, expires_s)
        self._held.grant(granted)
        return granted

    async def claim_due(
        self,
        owner: str,
        now_s: float,
        lease_s: float,
        limit: int,
        exclude: Collection[str] = (),
        task_types: Collection[str] | None = None,
    ) -> list[tuple[Lease, Task]]:
        """Lease, in one transaction, up to ``limit`` due tasks (``due_s <= now_s``) in
        a claimable state that no valid lease holds -- not even one of ``owner``'s,
        which it already has -- best first by (priority, due_s), skipping ``exclude``
        and, when ``task_types`` is given, every task of another type (a worker
        claims only what it has handlers for).  Returns each lease with the task
        as stored, best first.  A task that cannot be read stays leased to
        ``owner`` (so it is not handed round) but is not returned."""
        expires_s = now_s + check_lease_s(lease_s)
        check_owner(owner)
        if not check_limit(limit):
            return []
        types = None if task_types is None else frozenset(task_types)
        if types is not None and not types:
            return []
        claimed = await self._claim_due(owner, now_s, expires_s, limit, exclude, types)
        self._held.grant(lease for lease, _ in claimed)
        return [(lease, task) for lease, task in claimed if task is not None]

    async def next_due_s(self, owner: str, now_s: float) -> float | None:
        """When ``claim_due`` could next find work for ``owner``, or None.

        The earliest due time of a task in a claimable state with no valid
        lease; a task another owner holds counts from its lease's expiry (if that
        owner dies, the task is free then), one ``owner`` holds not at all.  May be
        <= ``now_s``: there is work already."""
        return await self._next_due_s(check_owner(owner), now_s)

    async def renew(self, owner: str, now_s: float, lease_s: float) -> list[str]:
        """Heartbeat: extend every valid lease of ``owner`` to ``now_s + lease_s``.
        Returns the ids of the leases it has lost: expired ones (ended now, so
        their writes are refused from here on) and, among those this store
        granted, ones taken over or ended since other than by ``owner``'s own
        ``release`` or lease-ending fenced ``save``."""
        expires_s = now_s + check_lease_s(lease_s)
        check_owner(owner)
        mark = self._held.mark()
        extended, expired = await self._renew(owner, now_s, expires_s)
        return self._held.renewed(owner, extended, expired, mark)

    async def release(self, leases: Sequence[Lease]) -> None:
        """Hand tasks back (no owner) without changing anything else; a lease no
        longer held is ignored."""
        if leases:
            kept = list(leases)
            await self._release(kept)
            self._held.drop(kept)

    @abstractmethod
    async def _claim(
        self, task_ids: list[str], owner: str, now_s: float, expires_s: float
    ) -> list[Lease]:
        """Lease the free ones of these (distinct) tasks until ``expires_s``."""

    async def _claim_start(
        self, task_ids: list[str], owner: str, now_s: float, expires_s: float
    ) -> list[Lease]:
        """Lease and record RUNNING.  The default only leases (a store that keeps
        nothing across a crash has nothing to count); a durable store overrides it."""
        return await self._claim(task_ids, owner, now_s, expires_s)

    @abstractmethod
    async def _claim_due(
        self,
        owner: str,
        now_s: float,
        expires_s: float,
        limit: int,
        exclude: Collection[str],
        task_types: frozenset[str] | None,
    ) -> list[tuple[Lease, Task | None]]:
        """Lease up to ``limit`` (>= 1) due free tasks (of ``task_types`` only, unless
        None; never empty), best first; None for a task whose record cannot be read."""

    @abstractmethod
    async def _next_due_s(self, owner: str, now_s: float) -> float | None: ...

    @abstractmethod
    async def _renew(
        self, owner: str, now_s: float, expires_s: float
    ) -> tuple[list[tuple[str, int]], list[str]]:
        """Extend ``owner``'s valid leases; returns (extended (id, token) pairs, ids
        whose lease had expired and is now ended)."""

    @abstractmethod
    async def _release(self, leases: list[Lease]) -> None:
        """End these leases where still held."""

    # -- keeping leases alive from another thread, and noticing other writers ------------

    def keep_alive(self, owner: str, now_s: float, lease_s: float) -> int | None:
        """Extend ``owner``'s valid leases to ``now_s + lease_s``, callable from ANY
        thread, without the books (``renew`` on the loop still reports losses).
        Returns how many were extended, or None when this store cannot do it
        (then only the loop's heartbeat renews)."""
        expires_s = now_s + check_lease_s(lease_s)
        return self._keep_alive(check_owner(owner), now_s, expires_s)

    def _keep_alive(self, owner: str, now_s: float, expires_s: float) -> int | None:
        return None

    async def changed_elsewhere(self) -> bool | None:
        """Whether another process wrote to the store since the last call; None
        when the store cannot tell (then the scheduler polls on a timer)."""
        return None

    # -- retention -------------------------------------------------------------------

    async def purge_finished(
        self,
        before_s: float,
        limit: int,
        task_types: Collection[str] | None = None,
        exclude_types: Collection[str] = (),
    ) -> int:
        """Delete up to ``limit`` finished tasks (COMPLETED, FAILED, CANCELLED) that
        finished at or before ``before_s``; only of ``task_types`` if given, never of
        ``exclude_types``.  Returns how many were deleted (fewer than ``limit``
        means none is left).  Unfinished tasks are never touched."""
        if not check_limit(limit):
            return 0
        return await self._purge_finished(
            float(before_s),
            limit,
            None if task_types is None else list(task_types),
            list(exclude_types),
        )

    @abstractmethod
    async def _purge_finished(
        self,
        before_s: float,
        limit: int,
        task_types: list[str] | None,
        exclude_types: list[str],
    ) -> int: ...

    # -- recurring schedules: JSON records (see asched.engine.recurring.Schedule) ---------

    @abstractmethod
    async def save_schedules(self, records: Sequence[dict[str, Any]]) -> None:
        """Insert or replace schedule records, keyed by their ``"id"``."""

    @abstractmethod
    async def load_schedules(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def delete_schedules(self, schedule_ids: Sequence[str]) -> None:
        """Remove schedule records; unknown ids are ignored."""


def check_batch(tasks: Sequence[Task]) -> None:
    """Duplicates inside one batch, found before anything is sent."""
    if len(tasks) == 1:
        return
    ids: set[str] = set()
    keys: set[str] = set()
    for task in tasks:
        if task.id in ids:
            raise TaskValidationError("task_id", task.id, "used twice in one batch")
        ids.add(task.id)
        key = task.idempotency_key
        if key is not None:
            if key in keys:
                raise TaskValidationError("idempotency_key", key, "used twice in one batch")
            keys.add(key)
