"""One SQLite connection on its own thread: each call is one hop to that thread.

Why not aiosqlite: its public API runs every statement as its own call on its
thread, so a group transaction (BEGIN, SAVEPOINT, executemany, RELEASE, ...,
COMMIT) paid one thread hop and one loop wake-up per statement.  Here a whole
transaction is one plain function run on the connection's thread, so a group
costs one hop whatever it writes.  The thread belongs to a single-worker
executor, so calls run in order and the connection is only ever used by it;
``call_blocking`` lets another thread (the lease keep-alive) queue a call
without the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class DbThread:
    __slots__ = ("_db", "_pool")

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        try:
            self._db = self._pool.submit(connect).result()
        except BaseException:
            self._pool.shutdown(wait=False)
            raise

    async def call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(connection)`` on the thread; one hop there and back."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, work, self._db)

    def call_blocking(self, work: Callable[[sqlite3.Connection], T], timeout_s: float) -> T:
        """The same from any thread but the loop's; waits at most ``timeout_s``."""
        return self._pool.submit(work, self._db).result(timeout_s)

    def close(self) -> None:
        """Close the connection on its thread, then end the thread."""
        try:
            self._pool.submit(self._db.close).result()
        finally:
            self._pool.shutdown(wait=True)
