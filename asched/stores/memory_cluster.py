"""The cluster rules of the Store contract for :class:`asched.stores.MemoryStore`:
schedule records written by revision, control requests and the worker registry,
all in dicts (see the matching sections of :mod:`asched.stores.base`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asched.model import Task
from asched.stores.base import Lease


class MemoryCluster:
    """Mixed into MemoryStore, which owns the dicts named here."""

    _tasks: dict[str, Task]
    _leases: dict[str, Lease]
    _schedules: dict[str, dict[str, Any]]

    def __init__(self) -> None:
        self._requests: dict[str, dict[str, Any]] = {}
        self._workers: dict[str, dict[str, Any]] = {}

    async def create_schedule(self, record: dict[str, Any]) -> dict[str, Any] | None:
        existing = self._schedules.get(record["id"])
        if existing is not None:
            return dict(existing)
        self._schedules[record["id"]] = dict(record)
        return None

    async def save_schedule_progress(self, records: Sequence[dict[str, Any]]) -> list[str]:
        refused = []
        for record in records:
            stored = self._schedules.get(record["id"])
            if stored is None or stored.get("revision") != record.get("revision"):
                refused.append(record["id"])
            else:
                self._schedules[record["id"]] = dict(record)
        return refused

    async def unfinished_ids(self, prefix: str) -> list[str]:
        return [
            task_id
            for task_id, task in self._tasks.items()
            if task_id.startswith(prefix) and not task.is_terminal
        ]

    async def _request_control(self, task_id: str, request: dict[str, Any]) -> None:
        earlier = self._requests.get(task_id)
        if earlier is None or earlier["action"] != "cancel" or request["action"] == "cancel":
            self._requests[task_id] = request

    async def _take_control_requests(self, owner: str) -> list[dict[str, Any]]:
        taken = []
        for task_id in list(self._requests):
            task = self._tasks.get(task_id)
            if task is None or task.is_terminal:
                del self._requests[task_id]
                continue
            lease = self._leases.get(task_id)
            if lease is not None and lease.owner == owner:
                taken.append(self._requests.pop(task_id))
        return taken

    async def list_workers(self) -> list[dict[str, Any]]:
        found = [dict(record) for record in self._workers.values()]
        found.sort(key=lambda r: (r.get("started_s", 0.0), r["id"]))
        return found

    async def remove_worker(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    async def _put_worker(self, record: dict[str, Any]) -> None:
        self._workers[record["id"]] = record

    async def _beat_worker(
        self, worker_id: str, now_s: float, running: int, figures: dict[str, Any] | None
    ) -> bool:
        record = self._workers.get(worker_id)
        if record is None:
            return False
        record["heartbeat_s"] = now_s
        record["running"] = running
        if figures is not None:
            record["figures"] = figures
        return True
