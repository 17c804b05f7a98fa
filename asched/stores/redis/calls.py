"""Script calls to Redis: pipelined in batches, retried with backoff while Redis is away.

Writes (every script that changes something) queue up; one writer coroutine
sends everything queued so far in one pipeline, so many concurrent callers
cost one round trip.  Calls in one batch run in Redis in queue order; a few
batches may be in flight at once on separate connections, so concurrent calls
have no order among themselves (a caller whose write depends on an earlier one
awaits that first, as the scheduler does).

When the connection fails, the whole batch is sent again after a jittered,
growing delay until ``reconnect_deadline_s``; then its callers get a
:class:`StoreError`.  A batch may have been applied before its reply was lost,
so scripts that must not act twice get ``again=1`` on a resend: an insert or a
fenced save whose exact record is already stored counts as done.  (A claim
sent twice leases to the same owner twice; the store releases a lease it never
handed out at the next heartbeat.)
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from asched.clock import monotonic
from asched.errors import StoreError
from asched.stores.redis.scripts import SCRIPTS
from asched.stores.redis.wakeups import WAKING_SCRIPTS

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: Errors after which the same call may succeed once Redis is back.
TRANSIENT = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)
#: Write batches sent at once, each on its own connection.  Callers that depend on
#: a write await it before the next, so batches in flight never need an order.
MAX_IN_FLIGHT = 4


@dataclass(slots=True)
class ScriptCall:
    """One queued script call: ``args`` follow the key base (``ARGV[1]``)."""

    script: str
    args: list[Any]
    future: asyncio.Future[Any]
    #: ``args[0]`` is the again flag, set to 1 when the call is resent.
    resend_flag: bool = False


@dataclass(slots=True)
class Backoff:
    deadline_s: float
    rng: random.Random
    delay_s: float = 0.05
    started: float = field(default_factory=monotonic)

    async def wait(self, what: str, exc: BaseException) -> None:
        """Sleep before the next try; raise StoreError once the deadline has passed."""
        left_s = self.started + self.deadline_s - monotonic()
        if left_s <= 0:
            raise StoreError(f"redis store: {what} failed for {self.deadline_s:g}s: {exc}") from exc
        if self.delay_s == 0.05:
            logger.warning("redis store: %s failed (%s); retrying with backoff", what, exc)
        await asyncio.sleep(min(left_s, self.delay_s * (0.5 + self.rng.random())))
        self.delay_s = min(self.delay_s * 2, 2.0)


class ScriptRunner:
    """Loads the scripts and runs them, batching writes into pipelines."""

    def __init__(
        self,
        client: Redis,
        meta_key: str,
        base: str,
        deadline_s: float,
        on_reconnect: Callable[[], Awaitable[None]],
    ) -> None:
        self._client = client
        self._meta_key = meta_key
        self._base = base
        self._deadline_s = deadline_s
        self._on_reconnect = on_reconnect
        self._rng = random.Random()
        self._shas: dict[str, str] = {}
        self._queue: list[ScriptCall] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._checking = False
        #: Round trips the writer made, and script calls they carried.
        self.round_trips = 0
        self.calls_sent = 0
        #: After a batch that may give other workers work: PUBLISH channel origin
        #: (see asched.stores.redis.wakeups).
        self.announce: tuple[str, str] | None = None

    async def start(self) -> None:
        await self.read(self._load_scripts, "loading scripts")
        self._closing = False
        self._writer = asyncio.get_running_loop().create_task(self._write_forever())

    async def stop(self) -> None:
        """Send everything queued, then stop the writer."""
        writer = self._writer
        if writer is None:
            return
        self._closing = True
        self._wake.set()
        await writer
        self._writer = None

    @property
    def running(self) -> bool:
        return self._writer is not None and not self._closing

    # -- writes ------------------------------------------------------------------------

    def write(self, script: str, args: list[Any], resend_flag: bool = False) -> asyncio.Future[Any]:
        """Queue a script call; the future gets its reply (or its error)."""
        if not self.running:
            raise StoreError("redis store is not open")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(ScriptCall(script, args, future, resend_flag))
        self._idle.clear()
        self._wake.set()
        return future

    async def drained(self) -> None:
        """Wait until every write queued so far has its reply (read-your-writes)."""
        if not self._idle.is_set():
            await self._idle.wait()

    async def _write_forever(self) -> None:
        """Send what is queued as a batch; while batches are in flight (up to
        ``MAX_IN_FLIGHT``, each on its own connection), what queues meanwhile goes
        out as the next one instead of waiting for them."""
        in_flight: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()

        def landed(sent: asyncio.Task[None]) -> None:
            in_flight.discard(sent)
            self._wake.set()

        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue and len(in_flight) < MAX_IN_FLIGHT:
                batch, self._queue = self._queue, []
                sent = loop.create_task(self._send_guarded(batch))
                in_flight.add(sent)
                sent.add_done_callback(landed)
            if not self._queue and not in_flight:
                self._idle.set()
                if self._closing:
                    return

    async def _send_guarded(self, batch: list[ScriptCall]) -> None:
        """Send a batch; whatever goes wrong, every caller gets an answer."""
        try:
            await self._send_batch(batch)
        except BaseException as exc:
            logger.exception("redis store: sending %d call(s) failed", len(batch))
            _fail(batch, StoreError(f"redis store: {type(exc).__name__}: {exc}"))
            if not isinstance(exc, Exception):
                raise

    async def _send_batch(self, batch: list[ScriptCall]) -> None:
        backoff = Backoff(self._deadline_s, self._rng)
        pending, again = batch, False
        while pending:
            try:
                replies = await self._pipeline(pending, again)
            except TRANSIENT as exc:
                try:
                    await backoff.wait(f"writing {len(pending)} call(s)", exc)
                except StoreError as error:
                    _fail(pending, error)
                    return
                again = True
                continue
            except RedisError as exc:
                _fail(pending, StoreError(f"redis store: {exc}"))
                return
            if again:
                await self._after_reconnect()
            missing = [c for c, r in zip(pending, replies, strict=True) if _noscript(r)]
            for call, reply in zip(pending, replies, strict=True):
                if not _noscript(reply):
                    _settle(call, reply)
            if missing:  # Redis restarted and lost its script cache: load and resend
                await self.read(self._load_scripts, "loading scripts")
            pending = missing

    async def _pipeline(self, calls: list[ScriptCall], again: bool) -> list[Any]:
        self.round_trips += 1
        self.calls_sent += len(calls)
        async with self._client.pipeline(transaction=False) as pipe:
            for call in calls:
                args = call.args
                if again and call.resend_flag:
                    args = [1, *args[1:]]
                pipe.execute_command(
                    "EVALSHA", self._shas[call.script], 1, self._meta_key, self._base, *args
                )
            announce = self.announce
            if announce is not None and any(c.script in WAKING_SCRIPTS for c in calls):
                pipe.execute_command("PUBLISH", *announce)
                return list(await pipe.execute(raise_on_error=False))[:-1]
            return list(await pipe.execute(raise_on_error=False))

    async def _after_reconnect(self) -> None:
        if self._checking:
            return
        logger.warning("redis store: reconnected")
        self._checking = True
        try:
            await self._on_reconnect()
        except Exception:
            logger.exception("redis store: the check after reconnecting failed")
        finally:
            self._checking = False

    # -- reads -------------------------------------------------------------------------

    async def run(self, script: str, args: list[Any]) -> Any:
        """Run a read-only script (after the queued writes), retrying while Redis is away."""
        await self.drained()
        return await self.read(lambda: self.call_now(script, args), script)

    async def call_now(self, script: str, args: list[Any]) -> Any:
        """One script call on its own, no queue and no retry."""
        client: Any = self._client  # redis-py's stubs differ between its versions
        try:
            return await client.evalsha(self._shas[script], 1, self._meta_key, self._base, *args)
        except NoScriptError:
            await self._load_scripts()
            return await client.evalsha(self._shas[script], 1, self._meta_key, self._base, *args)

    async def read(self, attempt: Callable[[], Awaitable[T]], what: str) -> T:
        """Run an idempotent call, retrying while Redis is unreachable."""
        backoff = Backoff(self._deadline_s, self._rng)
        failed = False
        while True:
            try:
                result = await attempt()
            except TRANSIENT as exc:
                await backoff.wait(what, exc)
                failed = True
                continue
            except RedisError as exc:
                raise StoreError(f"redis store: {what}: {exc}") from exc
            if failed and self._writer is not None:
                await self._after_reconnect()
            return result

    async def _load_scripts(self) -> None:
        client: Any = self._client
        for name, source in SCRIPTS.items():
            self._shas[name] = str(await client.script_load(source))


def _noscript(reply: Any) -> bool:
    return isinstance(reply, NoScriptError)


def _settle(call: ScriptCall, reply: Any) -> None:
    if call.future.done():
        return
    if isinstance(reply, RedisError):
        call.future.set_exception(StoreError(f"redis store: {call.script}: {reply}"))
    elif isinstance(reply, Exception):
        call.future.set_exception(reply)
    else:
        call.future.set_result(reply)


def _fail(calls: list[ScriptCall], error: StoreError) -> None:
    for call in calls:
        if not call.future.done():
            call.future.set_exception(error)
