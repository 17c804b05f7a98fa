"""SQLiteStore's one-task insert calls (the common lone ``schedule_task``), kept by
the open group as parallel lists: a row and a future per call, no call object.
Thousands of such calls in flight would otherwise each hold a call object and a
rows object, which every pass of the garbage collector walks."""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from asched.errors import StoreError, TaskValidationError
from asched.model import Task
from asched.stores.sqlite.connection import Row


class LoneRows(NamedTuple):
    """What a group's lone inserts write, handed to the database thread."""

    tasks: list[Task]
    rows: list[Row]
    #: (id, data) of those whose data is not empty
    data: list[Row]


class LoneInserts:
    """The open group's one-task insert calls, and who waits on each."""

    __slots__ = ("data", "futures", "rows", "tasks")

    def __init__(self) -> None:
        self.tasks: list[Task] = []
        self.rows: list[Row] = []
        self.data: list[Row] = []
        self.futures: list[asyncio.Future[None]] = []

    def add(self, task: Task, row: Row, data: Row | None) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.tasks.append(task)
        self.rows.append(row)
        if data is not None:
            self.data.append(data)
        self.futures.append(future)
        return future

    def written(self) -> LoneRows:
        return LoneRows(self.tasks, self.rows, self.data)

    def settle(self, errors: dict[int, TaskValidationError]) -> None:
        for index, future in enumerate(self.futures):
            if not future.done():
                error = errors.get(index) if errors else None
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    def fail(self, error: StoreError) -> None:
        for future in self.futures:
            if not future.done():
                future.set_exception(error)
