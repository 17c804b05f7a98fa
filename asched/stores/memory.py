"""MemoryStore: tasks in a dict.  Fast, and gone when the process ends.

Leases follow the same contract as a shared durable store (a second dict, by
task id), so schedulers sharing one MemoryStore in one process behave as
processes sharing a file would.  ``save`` keeps the object it is given when
that is not the stored one (a copy), fenced like any store's write.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from asched.errors import TaskValidationError
from asched.model import Task, TaskLifecycle
from asched.stores.base import (
    CLAIMABLE_STATES,
    LEASE_ENDING_STATES,
    Lease,
    Store,
    check_payload,
)
from asched.stores.memory_cluster import MemoryCluster
from asched.stores.memory_rules import MemoryRules


class MemoryStore(MemoryRules, MemoryCluster, Store):
    durable = False
    shares_objects = True

    def __init__(self) -> None:
        Store.__init__(self)
        MemoryCluster.__init__(self)
        MemoryRules.__init__(self)
        self._tasks: dict[str, Task] = {}
        self._by_idempotency_key: dict[str, str] = {}
        #: The current lease of each leased task, valid or expired.
        self._leases: dict[str, Lease] = {}
        #: The last token granted per task: tokens outlive the leases.
        self._tokens: dict[str, int] = {}
        self._schedules: dict[str, dict[str, Any]] = {}

    async def insert(self, tasks: Sequence[Task]) -> None:
        self.insert_now(tasks)

    def insert_one(self, task: Task) -> None:
        """:meth:`insert_now` of one task."""
        store = self._tasks
        if len(task.data_json) > self.max_payload_bytes:
            check_payload("task_data", task.data_json, self.max_payload_bytes)
        if task.id in store:
            raise TaskValidationError("task_id", task.id, "already exists")
        if task.idempotency_key is not None:
            self._check_key(task)
            self._by_idempotency_key[task.idempotency_key] = task.id
        store[task.id] = task

    def insert_now(self, tasks: Sequence[Task]) -> None:
        """Synchronous insert: the memory store never waits."""
        if len(tasks) == 1:
            self.insert_one(tasks[0])
            return
        store = self._tasks
        limit = self.max_payload_bytes
        seen: set[str] = set()
        keys: set[str] = set()
        for task in tasks:
            check_payload("task_data", task.data_json, limit)
            if task.id in store or task.id in seen:
                raise TaskValidationError("task_id", task.id, "already exists")
            seen.add(task.id)
            if task.idempotency_key is not None:
                self._check_key(task)
                if task.idempotency_key in keys:
                    raise TaskValidationError(
                        "idempotency_key", task.idempotency_key, "used twice in one batch"
                    )
                keys.add(task.idempotency_key)
        for task in tasks:
            store[task.id] = task
            if task.idempotency_key is not None:
                self._by_idempotency_key[task.idempotency_key] = task.id

    def _check_key(self, task: Task) -> None:
        if task.idempotency_key in self._by_idempotency_key:
            raise TaskValidationError("idempotency_key", task.idempotency_key, "already used")

    async def save(
        self, tasks: Sequence[Task], leases: Mapping[str, Lease] | None = None
    ) -> list[str]:
        if not leases and not self._leases:
            self._keep_copies(tasks)
            return []
        refused = []
        for task in tasks:
            lease = leases.get(task.id) if leases else None
            if lease is not None and not self._holds(lease):
                refused.append(task.id)
                continue
            if self._keep_copies((task,)) and lease is not None:
                refused.append(task.id)
                continue
            if self._slots:
                self._saved_state(task)
            if task.lifecycle in LEASE_ENDING_STATES:
                ended = self._leases.pop(task.id, None)
                if lease is not None and ended is not None:
                    self._held.drop((ended,))
        return refused

    def _keep_copies(self, tasks: Sequence[Task]) -> bool:
        """Keep these objects as the stored tasks; a finished task stays as it is.
        Returns whether a write to a finished task was ignored."""
        stored = self._tasks
        ignored = False
        for task in tasks:
            current = stored.get(task.id, task)
            if current is not task:
                if current.is_terminal:
                    ignored = True
                    continue
                stored[task.id] = task
        return ignored

    def _holds(self, lease: Lease) -> bool:
        current = self._leases.get(lease.task_id)
        return current is not None and (current.owner, current.token) == (
            lease.owner,
            lease.token,
        )

    async def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def get_now(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    async def find_by_idempotency_key(self, key: str) -> str | None:
        return self._by_idempotency_key.get(key)

    async def list_tasks(
        self,
        status: TaskLifecycle | None = None,
        task_type: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        found = [
            t
            for t in self._tasks.values()
            if (status is None or t.lifecycle is status)
            and (task_type is None or t.type == task_type)
        ]
        found.sort(key=lambda t: (t.due_s, t.priority))
        return found if limit is None else found[:limit]

    async def load_unfinished(self) -> list[Task]:
        return [t for t in self._tasks.values() if not t.is_terminal]

    async def count_by_state(self) -> dict[TaskLifecycle, int]:
        return dict(Counter(t.lifecycle for t in self._tasks.values()))

    # -- leases: the small steps (asched.stores.base keeps the books) -------------------

    async def _claim(
        self, task_ids: list[str], owner: str, now_s: float, expires_s: float
    ) -> list[Lease]:
        granted = []
        for task_id in task_ids:
            task = self._tasks.get(task_id)
            if task is None or task.is_terminal or not self._free(task_id, owner, now_s):
                continue
            granted.append(self._grant(task_id, owner, expires_s))
        return granted

    async def _claim_due(
        self,
        owner: str,
        now_s: float,
        expires_s: float,
        limit: int,
        exclude: Collection[str],
        task_types: frozenset[str] | None,
    ) -> list[tuple[Lease, Task | None]]:
        skip = exclude if isinstance(exclude, set | frozenset | dict) else set(exclude)
        due = (
            t
            for t in self._claimable(now_s)
            if t.due_s <= now_s
            and t.id not in skip
            and (task_types is None or t.type in task_types)
        )
        # Dicts keep insertion order: the index breaks ties as SQLite's rowid does.
        ranked = ((t.priority, t.due_s, i, t) for i, t in enumerate(due))
        best = heapq.nsmallest(limit, ranked, key=lambda r: r[:3])
        return [(self._grant(t.id, owner, expires_s), t) for *_, t in best]

    async def _next_due_s(self, owner: str, now_s: float) -> float | None:
        times = [t.due_s for t in self._claimable(now_s)]
        for lease in self._leases.values():
            task = self._tasks[lease.task_id]
            if lease.owner != owner and lease.expires_s > now_s and _claimable(task):
                times.append(max(task.due_s, lease.expires_s))
        return min(times, default=None)

    async def _renew(
        self, owner: str, now_s: float, expires_s: float
    ) -> tuple[list[tuple[str, int]], list[str]]:
        extended: list[tuple[str, int]] = []
        expired: list[str] = []
        for task_id, lease in list(self._leases.items()):
            if lease.owner != owner:
                continue
            if lease.expires_s > now_s:
                self._leases[task_id] = Lease(task_id, owner, lease.token, expires_s)
                extended.append((task_id, lease.token))
            else:
                del self._leases[task_id]
                expired.append(task_id)
        return extended, expired

    async def _release(self, leases: list[Lease]) -> None:
        for lease in leases:
            if self._holds(lease):
                del self._leases[lease.task_id]

    def _free(self, task_id: str, owner: str, now_s: float) -> bool:
        lease = self._leases.get(task_id)
        return lease is None or lease.expires_s <= now_s or lease.owner == owner

    def _claimable(self, now_s: float) -> Iterator[Task]:
        """Tasks in a claimable state that no valid lease holds."""
        leases = self._leases
        for task in self._tasks.values():
            if _claimable(task):
                lease = leases.get(task.id)
                if lease is None or lease.expires_s <= now_s:
                    yield task

    def _grant(self, task_id: str, owner: str, expires_s: float) -> Lease:
        token = self._tokens.get(task_id, 0) + 1
        self._tokens[task_id] = token
        lease = self._leases[task_id] = Lease(task_id, owner, token, expires_s)
        return lease

    async def _purge_finished(
        self,
        before_s: float,
        limit: int,
        task_types: list[str] | None,
        exclude_types: list[str],
    ) -> int:
        only = None if task_types is None else set(task_types)
        skip = set(exclude_types)
        doomed = []
        for task in self._tasks.values():
            finished_s = task.finished_s
            if (
                finished_s is not None
                and finished_s <= before_s
                and task.is_terminal
                and (only is None or task.type in only)
                and task.type not in skip
            ):
                doomed.append(task)
                if len(doomed) >= limit:
                    break
        for task in doomed:
            del self._tasks[task.id]
            if task.idempotency_key is not None:
                self._by_idempotency_key.pop(task.idempotency_key, None)
            self._leases.pop(task.id, None)
            self._tokens.pop(task.id, None)
        return len(doomed)

    async def save_schedules(self, records: Sequence[dict[str, Any]]) -> None:
        for record in records:
            self._schedules[record["id"]] = record

    async def load_schedules(self) -> list[dict[str, Any]]:
        return list(self._schedules.values())

    async def delete_schedules(self, schedule_ids: Sequence[str]) -> None:
        for schedule_id in schedule_ids:
            self._schedules.pop(schedule_id, None)


def _claimable(task: Task) -> bool:
    return task.lifecycle in CLAIMABLE_STATES
