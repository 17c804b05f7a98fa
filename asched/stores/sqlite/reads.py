"""SQLiteStore's reads: queries on the read connection, and decoding rows.

A row's ``lifecycle`` column is the state a read reports: an attempt that
``claim_start`` recorded RUNNING is RUNNING here even before the worker saves
the whole record, started when its ``started_s`` column says (unless the record
has a later start: it was written after that claim).  A row that cannot be
read is logged, counted in ``corrupt_rows`` and skipped (``get`` of that one
id raises).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from asched.errors import StoreCorruptError, TaskValidationError
from asched.model import Task, TaskLifecycle
from asched.model.codec import decode_stored
from asched.stores.sqlite.connection import ORDER_SQL, PAYLOAD_COLUMNS, UNFINISHED_SQL

logger = logging.getLogger("asched.stores.sqlite")

#: The columns :func:`decode_row` reads, after the id.
ROW_COLUMNS = f"record, lifecycle, started_s, {PAYLOAD_COLUMNS}"
_TASK_COLUMNS = f"SELECT id, {ROW_COLUMNS} FROM tasks"
_STATES = TaskLifecycle.__members__


class TaskReader(ABC):
    """The read half of :class:`asched.stores.sqlite.SQLiteStore`."""

    path: str
    corrupt_rows: int

    @abstractmethod
    async def _read(self, sql: str, params: Iterable[Any] | Mapping[str, Any]) -> list[Any]:
        """Run a query on the read connection."""

    async def get(self, task_id: str) -> Task | None:
        rows = await self._read(_TASK_COLUMNS + " WHERE id = ?", (task_id,))
        if not rows:
            return None
        task = self._decode(*rows[0])
        if task is None:
            raise StoreCorruptError(f"sqlite store {self.path}: task {task_id!r} is unreadable")
        return task

    async def find_by_idempotency_key(self, key: str) -> str | None:
        rows = await self._read("SELECT id FROM tasks WHERE idempotency_key = ?", (key,))
        return str(rows[0][0]) if rows else None

    async def list_tasks(
        self,
        status: TaskLifecycle | None = None,
        task_type: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("lifecycle = ?")
            params.append(status.name)
        if task_type is not None:
            where.append("type = ?")
            params.append(task_type)
        sql = _TASK_COLUMNS
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += ORDER_SQL + " LIMIT ?"
        params.append(-1 if limit is None else limit)
        return self._decode_all(await self._read(sql, params))

    async def load_unfinished(self) -> list[Task]:
        sql = f"{_TASK_COLUMNS} WHERE lifecycle IN ({UNFINISHED_SQL})" + ORDER_SQL
        return self._decode_all(await self._read(sql, ()))

    async def count_by_state(self) -> dict[TaskLifecycle, int]:
        rows = await self._read("SELECT lifecycle, COUNT(*) FROM tasks GROUP BY lifecycle", ())
        counts: dict[TaskLifecycle, int] = {}
        for name, count in rows:
            state = _STATES.get(name)
            if state is None:
                logger.warning(
                    "sqlite store %s: unknown lifecycle %r in %d rows", self.path, name, count
                )
            else:
                counts[state] = int(count)
        return counts

    async def load_schedules(self) -> list[dict[str, Any]]:
        records = []
        for schedule_id, text in await self._read("SELECT id, record FROM schedules", ()):
            try:
                record = orjson.loads(text)
                if not isinstance(record, dict):
                    raise TypeError(f"expected a JSON object, not {type(record).__name__}")
            except (orjson.JSONDecodeError, TypeError) as exc:
                self._report_corrupt("schedule", schedule_id, exc)
                continue
            records.append(record)
        return records

    def _decode_all(self, rows: list[Any]) -> list[Task]:
        tasks = []
        for row in rows:
            task = self._decode(*row)
            if task is not None:
                tasks.append(task)
        return tasks

    def _decode(
        self,
        task_id: str,
        record: Any,
        lifecycle: str,
        started_s: float | None,
        data: Any,
        result: Any,
    ) -> Task | None:
        """The task, or None (logged and counted) when the row cannot be read."""
        try:
            task = decode_row(record, lifecycle, started_s, data, result)
            if task.id != task_id:
                raise TaskValidationError("id", task.id, f"does not match the row id {task_id!r}")
        except Exception as exc:
            self._report_corrupt("task", task_id, exc)
            return None
        return task

    def _report_corrupt(self, kind: str, row_id: str, exc: Exception) -> None:
        self.corrupt_rows += 1
        logger.warning("sqlite store %s: skipping corrupt %s %r: %s", self.path, kind, row_id, exc)


def decode_row(
    record: Any, lifecycle: str, started_s: float | None, data: Any, result: Any
) -> Task:
    """The task of one ``tasks`` row (:data:`ROW_COLUMNS`); raises when it cannot be read."""
    task = decode_stored(record, data, result, Task)
    state = _STATES.get(lifecycle)
    if state is None:
        raise TaskValidationError("lifecycle", lifecycle, "unknown state")
    task.lifecycle = state
    if (
        started_s is not None
        and state is RUNNING
        and (task.started_s is None or task.started_s < started_s)
    ):
        task.started_s = started_s
    return task


RUNNING = TaskLifecycle.RUNNING
