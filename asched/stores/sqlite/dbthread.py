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
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
logger = logging.getLogger("asched.stores.sqlite")

_STOP = object()


class DbThread:
    """A thread that owns one connection and runs the calls queued to it, in order.

    A call from the loop costs one queue put and one ``call_soon_threadsafe``
    back (no executor futures to chain)."""

    __slots__ = ("_db", "_queue", "_thread")

    def __init__(self, name: str, connect: Callable[[], sqlite3.Connection]) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        ready: Future[sqlite3.Connection] = Future()
        self._thread = threading.Thread(
            target=self._serve, args=(connect, ready), name=name, daemon=True
        )
        self._thread.start()
        self._db = ready.result()

    def _serve(self, connect: Callable[[], sqlite3.Connection], ready: Future[Any]) -> None:
        try:
            db = connect()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(db)
        while True:
            item = self._queue.get()
            if item is _STOP:
                db.close()
                return
            work, reply = item
            result, error = None, None
            try:
                result = work(db)
            except BaseException as exc:
                error = exc
            try:
                reply(result, error)
            except BaseException:  # the thread must outlive any one reply
                logger.exception("sqlite store: delivering a result failed")

    async def call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(connection)`` on the thread; one hop there and back."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def reply(result: Any, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, future, result, error)

        self._queue.put((work, reply))
        return await future

    def submit(
        self,
        work: Callable[[sqlite3.Connection], Any],
        reply: Callable[[Any, BaseException | None], None],
    ) -> None:
        """Queue ``work``; ``reply(result, error)`` is called on the thread after it."""
        self._queue.put((work, reply))

    def call_blocking(self, work: Callable[[sqlite3.Connection], T], timeout_s: float) -> T:
        """The same from any thread but the loop's; waits at most ``timeout_s``."""
        done: Future[T] = Future()

        def reply(result: Any, error: BaseException | None) -> None:
            if error is None:
                done.set_result(result)
            else:
                done.set_exception(error)

        self._queue.put((work, reply))
        return done.result(timeout_s)

    def close(self) -> None:
        """Close the connection on its thread (after what is queued), then end it."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
