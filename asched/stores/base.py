"""The Store contract every backend implements (memory, SQLite, Redis).

The scheduler's loop owns task state; a store keeps it.  All writes are
batches (``insert`` and ``save`` take sequences) so a durable backend can
group-commit everything one loop iteration changed in one transaction.

Several schedulers on one shared store coordinate through leases: ``claim``
atomically takes due tasks for an owner until ``expires_at``, ``renew``
extends the lease (heartbeat), ``release`` hands tasks back without spending
an attempt.  Every write made under a lease is fenced by its token, so a stale
owner's late write changes nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from asched.model import Task, TaskLifecycle


class Store(ABC):
    """Persistence for tasks.  Methods are called from the scheduler's loop only."""

    #: True when an acknowledged write survives a crash of this process.
    durable: bool = False
    #: True when ``get`` returns the very objects the scheduler mutates, so
    #: ``save`` has nothing to do.
    shares_objects: bool = False

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect, create or migrate the schema."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources."""

    @abstractmethod
    async def insert(self, tasks: Sequence[Task]) -> None:
        """Add new tasks, all or nothing.  A duplicate id or idempotency key fails the batch."""

    @abstractmethod
    async def save(self, tasks: Sequence[Task]) -> None:
        """Persist the current state of tasks already inserted."""

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

    # -- recurring schedules: JSON records (see asched.recurring.Schedule) ---------
    # Kept in this object by default, which suits an in-memory store; a durable
    # store overrides the three methods to keep them with its tasks.

    async def save_schedules(self, records: Sequence[dict[str, Any]]) -> None:
        kept = self._kept_schedules()
        for record in records:
            kept[record["id"]] = record

    async def load_schedules(self) -> list[dict[str, Any]]:
        return list(self._kept_schedules().values())

    async def delete_schedules(self, schedule_ids: Sequence[str]) -> None:
        kept = self._kept_schedules()
        for schedule_id in schedule_ids:
            kept.pop(schedule_id, None)

    def _kept_schedules(self) -> dict[str, dict[str, Any]]:
        kept: dict[str, dict[str, Any]] = vars(self).setdefault("_schedule_records", {})
        return kept
