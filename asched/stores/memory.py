"""MemoryStore: tasks in a dict.  Fast, and gone when the process ends."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from asched.errors import TaskValidationError
from asched.model import Task, TaskLifecycle
from asched.stores.base import Store


class MemoryStore(Store):
    durable = False
    shares_objects = True

    def __init__(self) -> None:
        self._tasks: dict[str, Task] = {}
        self._by_idempotency_key: dict[str, str] = {}

    async def insert(self, tasks: Sequence[Task]) -> None:
        self.insert_now(tasks)

    def insert_now(self, tasks: Sequence[Task]) -> None:
        """Synchronous insert: the memory store never waits."""
        store = self._tasks
        if len(tasks) == 1:
            task = tasks[0]
            if task.id in store:
                raise TaskValidationError("task_id", task.id, "already exists")
            if task.idempotency_key is not None:
                self._check_key(task)
                self._by_idempotency_key[task.idempotency_key] = task.id
            store[task.id] = task
            return
        seen: set[str] = set()
        keys: set[str] = set()
        for task in tasks:
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

    async def save(self, tasks: Sequence[Task]) -> None:
        return None

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
