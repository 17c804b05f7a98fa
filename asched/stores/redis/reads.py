"""RedisStore's reads: one task, listings, the unfinished tasks, counts by state,
and decoding a stored record (an unreadable one is counted and skipped).

Listings run the ``list`` script (:mod:`asched.stores.redis.scripts`), which
returns each task's stored fields with its index member; a read waits for the
queued writes first (``ScriptRunner.drained``) so it sees them.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from asched.errors import StoreCorruptError
from asched.model import TERMINAL_STATES, Task, TaskLifecycle
from asched.stores.redis.calls import ScriptRunner
from asched.stores.redis.codec import RecordCodec
from asched.stores.redis.keys import RedisKeys, member_task_id

# The store's logger: an unreadable record is reported under the store's name.
logger = logging.getLogger("asched.stores.redis.store")

_UNFINISHED = [s for s in TaskLifecycle if s not in TERMINAL_STATES]
#: A task's stored fields, in the order the scripts return them: the record (its
#: state) and its HMAC, the data and its HMAC, the result and its HMAC.
STORED_FIELDS = ("r", "h", "D", "hd", "R", "hr")


class RedisReads(ABC):
    """The read steps of :class:`asched.stores.redis.store.RedisStore`."""

    keys: RedisKeys
    _codec: RecordCodec
    _client: Redis | None
    corrupt_rows: int

    @abstractmethod
    def _require(self) -> ScriptRunner: ...

    @abstractmethod
    async def _command(self, what: str, *command: Any) -> Any: ...

    async def get(self, task_id: str) -> Task | None:
        stored = await self._command(
            "reading a task", "HMGET", self.keys.task(task_id), *STORED_FIELDS
        )
        if stored[0] is None:
            return None
        task = self._decode(task_id, stored)
        if task is None:
            raise StoreCorruptError(f"redis store {self!r}: task {task_id!r} is unreadable")
        return task

    async def find_by_idempotency_key(self, key: str) -> str | None:
        found = await self._command("reading an idempotency key", "HGET", self.keys.idem, key)
        return None if found is None else bytes(found).decode()

    async def list_tasks(
        self,
        status: TaskLifecycle | None = None,
        task_type: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        index = self.keys.all if status is None else self.keys.state(status)
        wanted = -1 if limit is None else max(0, limit)
        if wanted == 0:
            return []
        return [task for _, task in await self._list(index, task_type or "", wanted)]

    async def load_unfinished(self) -> list[Task]:
        found: list[tuple[tuple[float, bytes], Task]] = []
        for state in _UNFINISHED:
            found += await self._list(self.keys.state(state), "", -1)
        found.sort(key=lambda pair: pair[0])
        return [task for _, task in found]

    async def _list(
        self, index: str, task_type: str, limit: int
    ) -> list[tuple[tuple[float, bytes], Task]]:
        reply = await self._require().run("list", [index, task_type, limit])
        found = []
        for i in range(0, len(reply), 7):
            member = reply[i]
            task = self._decode(member_task_id(member), reply[i + 1 : i + 7])
            if task is not None:
                found.append(((task.due_s, member), task))
        return found

    async def count_by_state(self) -> dict[TaskLifecycle, int]:
        runner, client = self._require(), self._client
        assert client is not None
        await runner.drained()

        async def count() -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                for state in TaskLifecycle:
                    pipe.zcard(self.keys.state(state))
                return list(await pipe.execute())

        counts = await runner.read(count, "counting tasks")
        return {s: int(n) for s, n in zip(TaskLifecycle, counts, strict=True) if n}

    def _decode(self, task_id: str, stored: Sequence[bytes | None]) -> Task | None:
        try:
            return self._codec.decode(task_id, stored)
        except Exception as exc:
            self._report_corrupt("task", task_id, exc)
            return None

    def _report_corrupt(self, kind: str, item_id: str, exc: Exception) -> None:
        self.corrupt_rows += 1
        logger.warning("redis store %r: skipping unreadable %s %r: %s", self, kind, item_id, exc)
