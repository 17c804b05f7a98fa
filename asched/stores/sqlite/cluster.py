"""SQLiteStore's side of the cluster rules in the Store contract: schedule records,
control requests, and the worker registry (the tables of the "cluster control"
migration).  Saving and deleting schedule records joins the group commit; every
other write here is one short transaction on the writer thread, after the writes
queued before it."""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import orjson

from asched.clock import wall_now
from asched.stores.sqlite.connection import TERMINAL_SQL, encode_schedules
from asched.stores.sqlite.writer import GroupWriter

T = TypeVar("T")

_CREATE_SCHEDULE_SQL = (
    "INSERT INTO schedules (id, updated_s, version, record) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (id) DO NOTHING"
)
_PROGRESS_SQL = (
    "UPDATE schedules SET record = ?, version = ?, updated_s = ? "
    "WHERE id = ? AND json_extract(record, '$.revision') IS ?"
)
# A cancel replaces any request; a pause never replaces a cancel.
_REQUEST_SQL = (
    "INSERT INTO control_requests (task_id, action, record) VALUES (?, ?, ?) "
    "ON CONFLICT (task_id) DO UPDATE SET action = excluded.action, record = excluded.record "
    "WHERE excluded.action = 'cancel' OR control_requests.action != 'cancel'"
)
_MINE_SQL = (
    "SELECT r.task_id, r.record FROM control_requests r JOIN tasks t ON t.id = r.task_id "
    f"WHERE t.owner = ? AND t.lifecycle NOT IN ({TERMINAL_SQL})"
)
_DROP_DEAD_SQL = (
    "DELETE FROM control_requests WHERE task_id NOT IN "
    f"(SELECT id FROM tasks WHERE lifecycle NOT IN ({TERMINAL_SQL}))"
)
_PUT_WORKER_SQL = (
    "INSERT OR REPLACE INTO workers (id, started_s, heartbeat_s, running, record) "
    "VALUES (?, ?, ?, ?, ?)"
)


class ClusterRows(ABC):
    """Mixed into :class:`asched.stores.sqlite.SQLiteStore`."""

    @abstractmethod
    async def _read(self, sql: str, params: Iterable[Any] | Mapping[str, Any]) -> list[Any]: ...

    @abstractmethod
    async def _on_writer(self, work: Callable[[sqlite3.Connection], T]) -> T: ...

    @abstractmethod
    async def _retry_busy(self, attempt: Callable[[], Awaitable[T]]) -> T: ...

    @abstractmethod
    def _writes(self) -> GroupWriter: ...

    # -- schedule records, saved and deleted in the group commit --------------------

    async def save_schedules(self, records: Sequence[dict[str, Any]]) -> None:
        if records:
            await self._queue_schedules(encode_schedules(records))

    async def delete_schedules(self, schedule_ids: Sequence[str]) -> None:
        if schedule_ids:
            await self._queue_schedules(dict.fromkeys(schedule_ids))

    async def _queue_schedules(self, changes: Mapping[str, tuple[int, str] | None]) -> None:
        groups = self._writes()
        future = groups.open_group.add_schedules(changes)
        groups.kick()
        await future

    @abstractmethod
    async def _barrier(self) -> None: ...

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        await self._barrier()
        return await self._retry_busy(lambda: self._on_writer(work))

    # -- schedules ---------------------------------------------------------------------

    async def create_schedule(self, record: dict[str, Any]) -> dict[str, Any] | None:
        ((schedule_id, (version, text)),) = encode_schedules([record]).items()  # type: ignore[misc]
        return await self._write(partial(_create_schedule, schedule_id, version, text))

    async def save_schedule_progress(self, records: Sequence[dict[str, Any]]) -> list[str]:
        encoded = encode_schedules(records)
        if not encoded:
            return []
        rows = [
            (text, version, wall_now(), schedule_id, record.get("revision"))
            for record, (schedule_id, pair) in zip(records, encoded.items(), strict=True)
            if pair is not None
            for version, text in (pair,)
        ]
        return await self._write(partial(_save_progress, rows))

    async def unfinished_ids(self, prefix: str) -> list[str]:
        # The primary key's order: every id from ``prefix`` up to the next prefix.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"
        rows = await self._read(
            f"SELECT id FROM tasks WHERE id >= ? AND id < ? AND lifecycle NOT IN ({TERMINAL_SQL})",
            (prefix, upper),
        )
        return [str(row[0]) for row in rows]

    # -- control requests ----------------------------------------------------------------

    async def _request_control(self, task_id: str, request: dict[str, Any]) -> None:
        text = orjson.dumps(request).decode()

        def put(db: sqlite3.Connection) -> None:
            db.execute(_REQUEST_SQL, (task_id, request["action"], text))

        await self._write(put)

    async def _take_control_requests(self, owner: str) -> list[dict[str, Any]]:
        return await self._write(partial(_take_requests, owner))

    # -- workers -----------------------------------------------------------------------

    async def list_workers(self) -> list[dict[str, Any]]:
        rows = await self._read(
            "SELECT record, heartbeat_s, running FROM workers ORDER BY started_s, id", ()
        )
        found = []
        for text, heartbeat_s, running in rows:
            record = orjson.loads(text)
            record.update(heartbeat_s=heartbeat_s, running=running)
            found.append(record)
        return found

    async def remove_worker(self, worker_id: str) -> None:
        def remove(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

        await self._write(remove)

    async def _put_worker(self, record: dict[str, Any]) -> None:
        row = (
            record["id"],
            float(record.get("started_s", 0.0)),
            float(record.get("heartbeat_s", 0.0)),
            int(record.get("running", 0)),
            orjson.dumps(record).decode(),
        )

        def put(db: sqlite3.Connection) -> None:
            db.execute(_PUT_WORKER_SQL, row)

        await self._write(put)

    async def _beat_worker(
        self, worker_id: str, now_s: float, running: int, figures: dict[str, Any] | None
    ) -> bool:
        args: tuple[Any, ...]
        if figures is None:
            sql, args = _BEAT_SQL, (now_s, running, worker_id)
        else:
            sql, args = (
                _BEAT_WITH_FIGURES_SQL,
                (now_s, running, orjson.dumps(figures).decode(), worker_id),
            )

        def beat(db: sqlite3.Connection) -> bool:
            return db.execute(sql, args).rowcount > 0

        return await self._write(beat)


_BEAT_SQL = "UPDATE workers SET heartbeat_s = ?, running = ? WHERE id = ?"
_BEAT_WITH_FIGURES_SQL = (
    "UPDATE workers SET heartbeat_s = ?, running = ?, "
    "record = json_set(record, '$.figures', json(?)) WHERE id = ?"
)


def _create_schedule(
    schedule_id: str, version: int, text: str, db: sqlite3.Connection
) -> dict[str, Any] | None:
    cursor = db.execute(_CREATE_SCHEDULE_SQL, (schedule_id, wall_now(), version, text))
    if cursor.rowcount > 0:
        return None
    row = db.execute("SELECT record FROM schedules WHERE id = ?", (schedule_id,)).fetchone()
    found: dict[str, Any] = orjson.loads(row[0])
    return found


def _save_progress(rows: list[tuple[Any, ...]], db: sqlite3.Connection) -> list[str]:
    refused = []
    db.execute("BEGIN IMMEDIATE")
    try:
        for row in rows:
            if db.execute(_PROGRESS_SQL, row).rowcount == 0:
                refused.append(str(row[3]))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return refused


def _take_requests(owner: str, db: sqlite3.Connection) -> list[dict[str, Any]]:
    if db.execute("SELECT 1 FROM control_requests LIMIT 1").fetchone() is None:
        return []  # the usual case: nothing asked, nothing written
    db.execute("BEGIN IMMEDIATE")
    try:
        rows = db.execute(_MINE_SQL, (owner,)).fetchall()
        db.executemany("DELETE FROM control_requests WHERE task_id = ?", [(r[0],) for r in rows])
        db.execute(_DROP_DEAD_SQL)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return [orjson.loads(text) for _, text in rows]
