"""SQLiteStore's group-commit writer: group transactions, run in order on the database thread.

A caller queues its rows into the open :class:`WriteGroup` and calls
:meth:`GroupWriter.kick`.  When nothing is in flight, the group is sent to the
database thread at once -- no writer coroutine to wake, so a lone
``schedule_task`` costs one hop there and one loop wake-up back, like a bare
commit.  While a group is in flight, everything queued meanwhile gathers in the
next group, sent as soon as the first one is settled: group commit.  A group
that grows to :data:`AHEAD_ROWS` rows meanwhile is sent at once (up to
:data:`MAX_INFLIGHT` groups in flight): the database thread takes it up as soon
as the one before commits, so it writes while the loop is still busy (say,
encoding thousands of new tasks) instead of waiting for the loop to settle the
group before.  Groups run in the order sent; only a retried one (below) may
commit after groups sent later, which no caller can tell: a caller's writes are
queued only after its earlier ones settled.  Start-claims leave a group for one
of their own, sent at once -- even while other groups are in flight -- unless
the group also writes their tasks: the next tasks' handlers then run while the
saves of the last ones are written (a save waits for the loop to run what is
ready before its group is sent, so the claims that the same attempts made room
for go ahead of it).

The writer is callbacks on the loop, not a coroutine, so nothing can end it: a
group that fails (even with an unexpected error) fails its callers, and the next
group goes ahead.  A busy database is retried with jittered backoff until the
store's busy deadline, then the group fails with :class:`StoreBusyError`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

from asched.clock import monotonic, wall_now
from asched.errors import StoreBusyError, StoreError
from asched.model import Task
from asched.stores.base import check_batch
from asched.stores.leases import HeldLeases
from asched.stores.sqlite.connection import encode_insert, encode_one, encode_saves
from asched.stores.sqlite.dbthread import DbThread
from asched.stores.sqlite.files import (
    SQLITE_BUSY,
    SQLITE_LOCKED,
    error_code,
    store_error,
    unexpected_error,
)
from asched.stores.sqlite.group import GroupOutcome, WriteGroup, run_group

logger = logging.getLogger("asched.stores.sqlite")
BUSY_CODES = (SQLITE_BUSY, SQLITE_LOCKED)
#: How many rows an open group needs to be sent while another group is in flight,
#: and how many groups may be in flight at most: enough for a loop busy accepting
#: thousands of tasks to have them all written meanwhile, not after.
AHEAD_ROWS = 512
MAX_INFLIGHT = 64


class _BehindBusy(sqlite3.OperationalError):
    """Raised instead of running a group sent after one that waits to be retried."""

    sqlite_errorcode = SQLITE_BUSY


class _Attempt(NamedTuple):
    """One try at committing a group, and how long it may keep trying."""

    group: WriteGroup
    saves: list[Any]
    deadline_s: float
    delay_s: float


class GroupWriter:
    __slots__ = (
        "_busy_deadline_s",
        "_held",
        "_idle",
        "_kick_pending",
        "_limit",
        "_loop",
        "_path",
        "_rng",
        "_stalled",
        "_thread",
        "commits",
        "inflight",
        "open_group",
        "rows_written",
    )

    def __init__(
        self,
        thread: DbThread,
        path: str,
        held: HeldLeases,
        busy_deadline_s: float,
        rng: random.Random,
        max_payload_bytes: Callable[[], int],
    ) -> None:
        self._thread = thread
        self._path = path
        self._held = held
        self._busy_deadline_s = busy_deadline_s
        self._rng = rng
        self._limit = max_payload_bytes
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        self._idle.set()
        self.open_group = WriteGroup()
        #: groups sent to the database thread and not settled yet, oldest first
        self.inflight: list[WriteGroup] = []
        #: a group found the database busy: until all in flight settle, only the
        #: oldest may run (read and set on the database thread too)
        self._stalled = False
        self._kick_pending = False
        self.commits = 0
        self.rows_written = 0

    def kick(self) -> None:
        """Send the open group now unless one is in flight (then it goes next, or
        as soon as it holds :data:`AHEAD_ROWS` rows).  Start-claims in it go first,
        in a group of their own (``WriteGroup.take_starts``), sent at once even
        while others are in flight: a handler waits on them."""
        group = self.open_group
        if not group:
            return
        inflight = self.inflight
        if inflight and (len(inflight) >= MAX_INFLIGHT or group.rows < AHEAD_ROWS):
            if len(inflight) < MAX_INFLIGHT:
                starts = group.take_starts(ahead=True)
                if starts is not None:
                    self._start(starts)
            return
        self.open_group = WriteGroup()
        starts = group.take_starts()
        if starts is not None:
            self._start(starts)
        self._start(group)

    def insert(self, tasks: Sequence[Task], max_payload_bytes: int) -> asyncio.Future[None]:
        """Queue one insert call (a task that cannot be stored raises here), and kick."""
        now_s, group = wall_now(), self.open_group
        if len(tasks) == 1 and tasks[0].result is None:  # no call object (LoneInserts)
            row, data = encode_one(tasks[0], now_s, max_payload_bytes)
            future = group.add_lone(tasks[0], row, data)
        else:
            check_batch(tasks)
            future = group.add_insert(tasks, encode_insert(tasks, now_s, max_payload_bytes))
        self.kick()
        return future

    def kick_soon(self) -> None:
        """:meth:`kick` once the loop has run what is ready now: a save can wait that
        long, and a start-claim queued meanwhile then goes ahead of it."""
        if not self._kick_pending:
            self._kick_pending = True
            self._loop.call_soon(self._kick_now)

    def _kick_now(self) -> None:
        self._kick_pending = False
        self.kick()

    def _start(self, group: WriteGroup) -> None:
        self.inflight.append(group)
        self._idle.clear()
        try:
            self._send(group, monotonic() + self._busy_deadline_s, 0.005)
        except Exception as exc:
            self._failed(group, exc)

    async def drained(self) -> None:
        """Wait until everything queued so far is committed (or failed)."""
        while self.inflight or self.open_group:
            self.kick()
            await self._idle.wait()

    async def barrier(self) -> None:
        """Wait until every write queued before this call is settled."""
        groups = [*self.inflight, self.open_group] if self.open_group else [*self.inflight]
        for group in groups:
            await group.done_event.wait()

    def _send(self, group: WriteGroup, deadline_s: float, delay_s: float) -> None:
        now_s = wall_now()
        saves = encode_saves(group.saves, group.fences, now_s, self._limit())
        work = partial(
            run_group,
            calls=group.inserts,
            lone=group.lone.written(),
            saves=saves,
            ops=group.lease_ops,
            schedules=group.schedule_rows(now_s),
        )
        attempt = _Attempt(group, saves, deadline_s, delay_s)
        self._thread.submit(partial(self._in_order, group, work), partial(self._reply, attempt))

    def _in_order(
        self, group: WriteGroup, work: Callable[[sqlite3.Connection], Any], db: sqlite3.Connection
    ) -> Any:
        """On the database thread: run the group -- unless a group sent before it
        found the database busy and waits to be retried: then this one counts as
        busy too, so groups commit in the order they were sent."""
        oldest = self.inflight[:1]  # one step: the loop may change the list meanwhile
        if self._stalled and oldest and oldest[0] is not group:
            raise _BehindBusy("database is locked (a group before this one waits)")
        try:
            return work(db)
        except sqlite3.Error as exc:
            if error_code(exc) in BUSY_CODES:
                self._stalled = True
            raise

    def _reply(self, attempt: _Attempt, outcome: Any, error: BaseException | None) -> None:
        """On the database thread: hand the result to the loop."""
        try:
            self._loop.call_soon_threadsafe(self._done, attempt, outcome, error)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            logger.warning("sqlite store %s: a commit finished after its loop closed", self._path)

    def _done(self, attempt: _Attempt, outcome: Any, error: BaseException | None) -> None:
        group = attempt.group
        if error is not None:
            if isinstance(error, sqlite3.Error) and error_code(error) in BUSY_CODES:
                left_s = attempt.deadline_s - monotonic()
                if left_s > 0:
                    wait_s = min(left_s, attempt.delay_s * (0.5 + self._rng.random()))
                    self._loop.call_later(wait_s, self._resend, attempt)
                    return
                error = StoreBusyError(
                    f"sqlite store {self._path}: database stayed locked for "
                    f"{self._busy_deadline_s:g}s ({error})"
                )
            self._failed(group, error)
            return
        try:
            self._settle(group, attempt.saves, outcome)
        finally:
            self._next(group)

    def _resend(self, attempt: _Attempt) -> None:
        try:
            self._send(attempt.group, attempt.deadline_s, min(attempt.delay_s * 2, 0.25))
        except Exception as exc:
            self._failed(attempt.group, exc)

    def _settle(self, group: WriteGroup, saves: list[Any], outcome: GroupOutcome) -> None:
        self.commits += 1
        self.rows_written += len(saves) - len(outcome.refused)
        for call, error in zip(group.inserts, outcome.errors, strict=True):
            call.settle(error)
            if error is None:
                self.rows_written += len(call.rows.tasks)
        lone = group.lone
        if lone.tasks:
            lone.settle(outcome.lone_errors)
            self.rows_written += len(lone.tasks) - len(outcome.lone_errors)
        self._held.drop(
            s.lease for s in saves if s.lease and s.ends_lease and s.task_id not in outcome.refused
        )
        for op, result in zip(group.lease_ops, outcome.results, strict=True):
            op.settle(result)
        group.succeed(outcome.refused)

    def _failed(self, group: WriteGroup, error: BaseException) -> None:
        if isinstance(error, StoreError):
            failure = error
        elif isinstance(error, sqlite3.Error):
            failure = store_error(error, self._path)
        else:
            failure = unexpected_error(error, self._path)
        try:
            group.fail(failure)
        finally:
            self._next(group)

    def _next(self, group: WriteGroup) -> None:
        group.finish()
        self.inflight.remove(group)
        if not self.inflight:
            self._stalled = False
        if self.open_group:
            self.kick()
        elif not self.inflight:
            self._idle.set()
