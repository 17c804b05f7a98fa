"""RedisStore's side of the cluster rules in the Store contract: schedule records
(saved, loaded, deleted, and written by revision), control requests and the
worker registry.

Keys (``B`` is the store's hash tag, see :mod:`asched.stores.redis.keys`):
``B:sched`` (the schedules hash), ``B:cancel`` HASH task id -> request JSON,
``B:workers`` HASH worker id -> record JSON.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import orjson

from asched.model import TERMINAL_STATES, TaskLifecycle
from asched.stores.redis.codec import encode_schedules
from asched.stores.redis.keys import MEMBER_HEAD, RedisKeys

_TERMINAL = {state.name.encode() for state in TERMINAL_STATES}
_UNFINISHED = [
    s for s in TaskLifecycle if s not in TERMINAL_STATES and s is not TaskLifecycle.CREATED
]
_MEMBER_HEAD_PATTERN = "?" * MEMBER_HEAD
# Write a schedule record only onto the revision it was read at.
_PROGRESS_LUA = """
local refused = {}
for i = 1, #ARGV, 3 do
  local id, rev, text = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local cur = redis.call('HGET', KEYS[1], id)
  local ok = false
  if cur then
    local r = cjson.decode(cur)['revision']
    local s = 'null'
    if r ~= nil and r ~= cjson.null then s = string.format('%d', r) end
    ok = s == rev
  end
  if ok then redis.call('HSET', KEYS[1], id, text) else refused[#refused + 1] = id end
end
return refused
"""


class RedisCluster(ABC):
    """Mixed into :class:`asched.stores.redis.RedisStore`."""

    keys: RedisKeys

    @abstractmethod
    async def _command(self, what: str, *command: Any) -> Any: ...

    @abstractmethod
    async def _announce(self) -> None:
        """Tell other workers something changed (see asched.stores.redis.wakeups)."""

    @property
    def _requests_key(self) -> str:
        return f"{self.keys.base}:cancel"

    @property
    def _workers_key(self) -> str:
        return f"{self.keys.base}:workers"

    @abstractmethod
    def _report_corrupt(self, kind: str, item_id: str, exc: Exception) -> None: ...

    # -- schedules ---------------------------------------------------------------------

    async def save_schedules(self, records: Sequence[dict[str, Any]]) -> None:
        encoded = encode_schedules(records)
        if encoded:
            flat = [part for pair in encoded.items() for part in pair]
            await self._command("saving schedules", "HSET", self.keys.schedules, *flat)

    async def delete_schedules(self, schedule_ids: Sequence[str]) -> None:
        if schedule_ids:
            await self._command("deleting schedules", "HDEL", self.keys.schedules, *schedule_ids)

    async def load_schedules(self) -> list[dict[str, Any]]:
        raw = await self._command("loading schedules", "HGETALL", self.keys.schedules)
        records = []
        for schedule_id, text in raw.items():
            try:
                record = orjson.loads(text)
                if not isinstance(record, dict):
                    raise TypeError(f"expected a JSON object, not {type(record).__name__}")
            except (orjson.JSONDecodeError, TypeError) as exc:
                self._report_corrupt("schedule", schedule_id.decode(), exc)
                continue
            records.append(record)
        return records

    async def create_schedule(self, record: dict[str, Any]) -> dict[str, Any] | None:
        ((schedule_id, text),) = encode_schedules([record]).items()
        key = self.keys.schedules
        if await self._command("creating a schedule", "HSETNX", key, schedule_id, text):
            await self._announce()
            return None
        stored = await self._command("reading a schedule", "HGET", key, schedule_id)
        found: dict[str, Any] = orjson.loads(stored)
        return found

    async def save_schedule_progress(self, records: Sequence[dict[str, Any]]) -> list[str]:
        encoded = encode_schedules(records)
        args: list[Any] = []
        for record, (schedule_id, text) in zip(records, encoded.items(), strict=True):
            args += (schedule_id, orjson.dumps(record.get("revision")).decode(), text)
        if not args:
            return []
        refused = await self._command(
            "saving schedule progress", "EVAL", _PROGRESS_LUA, 1, self.keys.schedules, *args
        )
        await self._announce()
        return [r.decode() if isinstance(r, bytes) else str(r) for r in refused]

    async def unfinished_ids(self, prefix: str) -> list[str]:
        # The per-state indexes of unfinished tasks, matched on the id part of their
        # members: the cost grows with the backlog, not with the finished tasks kept.
        pattern = _MEMBER_HEAD_PATTERN + re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
        found: list[str] = []
        for state in _UNFINISHED:
            cursor: Any = 0
            while True:
                cursor, pairs = await self._command(
                    "finding a schedule's tasks",
                    "ZSCAN",
                    self.keys.state(state),
                    cursor,
                    "MATCH",
                    pattern,
                    "COUNT",
                    1000,
                )
                found += [_member_id(item) for item in pairs]
                if int(cursor) == 0:
                    break
        return found

    # -- control requests ----------------------------------------------------------------

    async def _request_control(self, task_id: str, request: dict[str, Any]) -> None:
        key = self._requests_key
        earlier = await self._command("reading a control request", "HGET", key, task_id)
        if (
            earlier is not None
            and request["action"] != "cancel"
            and orjson.loads(earlier).get("action") == "cancel"
        ):
            return  # a cancel already asked for is not turned into a pause
        text = orjson.dumps(request).decode()
        await self._command("recording a control request", "HSET", key, task_id, text)
        await self._announce()

    async def _take_control_requests(self, owner: str) -> list[dict[str, Any]]:
        key = self._requests_key
        raw = await self._command("reading control requests", "HGETALL", key)
        taken = []
        for task_id_raw, text in raw.items():
            task_id = task_id_raw.decode()
            holder, state = await self._command(
                "reading a task's owner", "HMGET", self.keys.task(task_id), "o", "s"
            )
            if state is None or state in _TERMINAL:
                await self._command("dropping a control request", "HDEL", key, task_id)
            elif (
                holder is not None
                and holder.decode() == owner
                and await self._command("taking a control request", "HDEL", key, task_id)
            ):
                taken.append(orjson.loads(text))
        return taken

    # -- workers -----------------------------------------------------------------------

    async def list_workers(self) -> list[dict[str, Any]]:
        raw = await self._command("listing workers", "HGETALL", self._workers_key)
        found = [orjson.loads(text) for text in raw.values()]
        found.sort(key=lambda r: (r.get("started_s", 0.0), r["id"]))
        return found

    async def remove_worker(self, worker_id: str) -> None:
        await self._command("removing a worker", "HDEL", self._workers_key, worker_id)

    async def _put_worker(self, record: dict[str, Any]) -> None:
        text = orjson.dumps(record).decode()
        await self._command("registering a worker", "HSET", self._workers_key, record["id"], text)

    async def _beat_worker(
        self, worker_id: str, now_s: float, running: int, figures: dict[str, Any] | None
    ) -> bool:
        key = self._workers_key
        text = await self._command("reading a worker", "HGET", key, worker_id)
        if text is None:
            return False
        record = orjson.loads(text)
        record.update(heartbeat_s=now_s, running=running)
        if figures is not None:
            record["figures"] = figures
        await self._command("recording a heartbeat", "HSET", key, worker_id, orjson.dumps(record))
        return True


def _member_id(item: Any) -> str:
    """The task id of a ZSCAN item: a (member, score) pair as redis-py parses it."""
    member = item[0] if isinstance(item, tuple | list) else item
    return str(member[MEMBER_HEAD:].decode())
