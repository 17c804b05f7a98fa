"""RedisStore: tasks in Redis, shared by any number of schedulers on any machines.

Every change is a Lua script (``scripts``), so each is atomic against every
other process: an insert checks ids and idempotency keys and writes the task
and its indexes; a claim moves due tasks out of the per-priority due sets into
the lease set in (priority, due, insertion) order; a fenced save compares the
lease owner and token in the same step as it writes.  Writes from concurrent
callers are pipelined into one round trip (``calls``).

Leases are timed by Redis ``TIME`` by default (``clock=server``): one clock for
every machine.  With ``clock=caller`` the ``now_s`` the scheduler passes is used,
as the other stores do (needed with a virtual clock).

Workers hear of other processes' writes on a pub/sub channel (``wakeups``):
work a producer adds is claimed within about 50 ms, and an idle cluster sends
nothing but heartbeats and a claim round every ``poll_interval_s``.

Durability is Redis's: with AOF and ``appendfsync always`` an acknowledged
write survives a Redis crash.  A marker (``meta``'s ``epoch``) tells when Redis
came back without its data; the store then logs at CRITICAL level.

Reads (one task, listings, counts, decoding) are in ``reads``.  Key layout: see
``keys``.  Records are the :meth:`Task.to_dict` JSON, never
pickle, optionally signed with HMAC-SHA256 (``signing_key``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from asched.background import cancel_and_wait
from asched.clock import wall_now
from asched.errors import StoreError, TaskValidationError
from asched.model import Task
from asched.stores.base import LEASE_ENDING_STATES, Lease, Store, check_batch
from asched.stores.redis.calls import ScriptRunner
from asched.stores.redis.cluster import RedisCluster
from asched.stores.redis.codec import RecordCodec
from asched.stores.redis.keys import LAYOUT_VERSION, RedisKeys
from asched.stores.redis.options import RedisOptions, safe_url, split_url
from asched.stores.redis.reads import RedisReads
from asched.stores.redis.rules import RedisRules
from asched.stores.redis.wakeups import ChangeWatch, RedisWakeups, new_origin

logger = logging.getLogger(__name__)

#: Expired leases one claim_due call ends at most (the rest at the next call).
_REAP_MAX = 1000
#: Finished tasks past ``result_ttl_s`` are purged this often, this many per call.
_SWEEP_EVERY_S = 60.0
_SWEEP_BATCH = 1000
#: Arguments per task of the save script.
_SAVE_FIELDS = 13


class RedisStore(RedisWakeups, RedisReads, RedisRules, RedisCluster, Store):
    """A durable, shared store in Redis; see the module docstring."""

    durable = True
    shares_objects = False

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        options: RedisOptions | None = None,
        **settings: Any,
    ) -> None:
        """``url`` is what redis-py's ``from_url`` takes (``rediss://`` for TLS,
        ``redis://user:pass@host`` for ACLs); ``settings`` are
        :class:`RedisOptions` fields."""
        super().__init__()
        self.url = url
        self.options = options or RedisOptions(**settings)
        self.keys = RedisKeys(self.options.prefix)
        self._codec = RecordCodec(self.options.signing_key, self.options.max_payload_bytes)
        self._server_clock = "1" if self.options.clock == "server" else "0"
        ttl = self.options.result_ttl_s
        self._ttl_ms = 0 if ttl is None else max(1, round(ttl * 1000))
        self._client: Redis | None = None
        self._runner: ScriptRunner | None = None
        self._epoch: bytes | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._origin = new_origin()
        self._watch: ChangeWatch | None = None
        #: Per owner, the ids last sent as its claim_due skip set.
        self._skips: dict[str, set[str]] = {}
        #: Unreadable records skipped, and times Redis was found to have lost its data.
        self.corrupt_rows = 0
        self.data_losses = 0

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """``redis://host:6379/0?prefix=myapp&clock=server&result_ttl_s=604800``
        (``max_payload_bytes``, ``reconnect_deadline_s``, ``signing_key_env=VAR``
        too); other query options go to redis-py."""
        redis_url, options = split_url(url)
        return cls(redis_url, options)

    def __repr__(self) -> str:
        return f"RedisStore({safe_url(self.url)!r}, prefix={self.options.prefix!r})"

    # -- opening and closing -----------------------------------------------------------

    async def open(self) -> None:
        if self._runner is not None:
            return
        pool = BlockingConnectionPool.from_url(
            self.url, max_connections=16, timeout=None, retry=Retry(NoBackoff(), 0)
        )
        client = Redis(connection_pool=pool)
        runner = ScriptRunner(
            client,
            self.keys.meta,
            self.keys.base,
            self.options.reconnect_deadline_s,
            self.check_epoch,
        )
        self._client, self._runner = client, runner
        runner.announce = (self.keys.changed, self._origin)
        try:
            await runner.start()
            await self._open_marker(runner)
            await self._warn_without_persistence(client)
        except BaseException:
            await self._disconnect()
            raise
        if self._ttl_ms:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def close(self) -> None:
        if self._runner is None:
            return
        await cancel_and_wait(self._sweeper)
        self._sweeper = None
        if self._watch is not None:
            await self._watch.stop()
            self._watch = None
        await self._runner.stop()
        await self._disconnect()

    async def _disconnect(self) -> None:
        client, self._client, self._runner = self._client, None, None
        if client is not None:
            await client.aclose()
            await client.connection_pool.disconnect()

    async def _open_marker(self, runner: ScriptRunner) -> None:
        epoch, created, layout = await runner.run("open", [LAYOUT_VERSION, os.urandom(8).hex()])
        if int(layout or 0) > LAYOUT_VERSION:
            raise StoreError(
                f"redis store {self!r}: key layout {int(layout)} is newer than this asched "
                f"supports ({LAYOUT_VERSION}); upgrade asched"
            )
        if created:
            logger.info("redis store %r: new store (no marker found)", self)
        self._epoch = epoch

    async def check_epoch(self) -> None:
        """Compare the marker with the one seen at open: if it is gone, Redis lost
        its data (say so loudly, and set a new marker)."""
        runner = self._require()
        epoch, created, _ = await runner.read(
            lambda: runner.call_now("open", [LAYOUT_VERSION, os.urandom(8).hex()]),
            "checking the marker",
        )
        if epoch == self._epoch and not created:
            return
        self.data_losses += 1
        logger.critical(
            "redis store %r: Redis has lost its data (the store's marker was %s): tasks, "
            "leases and schedules written before may be gone; check the Redis "
            "persistence settings (appendonly yes, appendfsync always)",
            self,
            "gone" if created else "replaced",
        )
        self._epoch = epoch

    async def _warn_without_persistence(self, client: Redis) -> None:
        try:
            config = await client.config_get("appendonly")
        except Exception:  # CONFIG may be refused by an ACL: nothing to say then
            return
        if config.get("appendonly") in ("no", b"no"):
            logger.warning(
                "redis store %r: Redis runs without AOF (appendonly no): a Redis crash or "
                "restart can lose acknowledged tasks",
                self,
            )

    def _require(self) -> ScriptRunner:
        if self._runner is None:
            raise StoreError(f"redis store {self!r} is not open")
        return self._runner

    # -- writing -----------------------------------------------------------------------

    async def insert(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        check_batch(tasks)
        args = [0, repr(wall_now()), self._ttl_ms, len(tasks), *self._codec.insert_args(tasks)]
        clash = await self._require().write("insert", args, resend_flag=True)
        if clash:
            field, value = (part.decode() for part in clash)
            reason = "already exists" if field == "task_id" else "already used"
            raise TaskValidationError(field, value, reason)

    async def save(
        self, tasks: Sequence[Task], leases: Mapping[str, Lease] | None = None
    ) -> list[str]:
        if not tasks:
            return []
        refused, legacy = await self._save(tasks, leases, ())
        if legacy:  # stored whole by an older asched: resend those with their data
            again = [t for t in tasks if t.id in legacy]
            refused += (await self._save(again, leases, legacy))[0]
        if leases:
            gone = set(refused)
            self._held.drop(
                leases[t.id]
                for t in tasks
                if t.id in leases and t.id not in gone and t.lifecycle in LEASE_ENDING_STATES
            )
        return refused

    async def _save(
        self,
        tasks: Sequence[Task],
        leases: Mapping[str, Lease] | None,
        with_data: set[str] | tuple[()],
    ) -> tuple[list[str], set[str]]:
        """(refused ids, ids left out because their data must come along)."""
        encoded = self._codec.save_args(tasks, leases, with_data)
        if not encoded:
            return [], set()
        args = [0, repr(wall_now()), self._ttl_ms, len(encoded) // _SAVE_FIELDS, *encoded]
        refused, legacy = await self._require().write("save", args, resend_flag=True)
        return [i.decode() for i in refused], {i.decode() for i in legacy}

    # -- leases ------------------------------------------------------------------------

    def _lease_args(self, owner: str, now_s: float, expires_s: float) -> list[Any]:
        # The Store base class has checked owner and the lease's length already.
        lease_s = expires_s - now_s
        return [owner, repr(float(now_s)), repr(expires_s), repr(lease_s), self._server_clock]

    # -- leases: the small steps (asched.stores.base checks the arguments and keeps
    # the books of what was granted)

    async def _claim(
        self, task_ids: list[str], owner: str, now_s: float, expires_s: float
    ) -> list[Lease]:
        return await self._lease("claim", task_ids, owner, now_s, expires_s)

    async def _claim_start(
        self, task_ids: list[str], owner: str, now_s: float, expires_s: float
    ) -> list[Lease]:
        """Lease only (the RUNNING write follows with the attempt's save), passing
        over tasks a user paused since this worker armed them."""
        return await self._lease("claim_start", task_ids, owner, now_s, expires_s)

    async def _lease(
        self, script: str, task_ids: list[str], owner: str, now_s: float, expires_s: float
    ) -> list[Lease]:
        args = self._lease_args(owner, now_s, expires_s)
        reply = await self._require().write(script, [*args, *task_ids])
        granted_expiry = float(reply[0])
        return [
            Lease(reply[i].decode(), owner, int(reply[i + 1]), granted_expiry)
            for i in range(1, len(reply), 2)
        ]

    async def _claim_due(
        self,
        owner: str,
        now_s: float,
        expires_s: float,
        limit: int,
        exclude: Collection[str],
        task_types: frozenset[str] | None,
    ) -> list[tuple[Lease, Task | None]]:
        args = [
            *self._lease_args(owner, now_s, expires_s),
            limit,
            _REAP_MAX,
            "" if task_types is None else orjson.dumps(sorted(task_types)),
        ]
        skip = exclude if isinstance(exclude, set | frozenset) else set(exclude)
        changes = self._skip_changes(owner, skip, full=False)
        reply = await self._require().write("claim_due", [*args, *changes])
        if reply == [b"resend"]:
            changes = self._skip_changes(owner, skip, full=True)
            reply = await self._require().write("claim_due", [*args, *changes])
        granted_expiry = float(reply[0])
        found: list[tuple[Lease, Task | None]] = []
        for i in range(1, len(reply), 8):
            task_id = reply[i].decode()
            lease = Lease(task_id, owner, int(reply[i + 1]), granted_expiry)
            # An unreadable one (None) stays leased here, renewed with the rest.
            found.append((lease, self._decode(task_id, reply[i + 2 : i + 8])))
        return found

    def _skip_changes(self, owner: str, skip: set[str] | frozenset[str], full: bool) -> list[Any]:
        """The arguments that bring ``owner``'s skip set in Redis to ``skip``: what
        changed since the last call, or (``full``) all of it."""
        sent = self._skips.get(owner)
        self._skips[owner] = set(skip)
        if full or sent is None:
            return [1, len(skip), len(skip), *skip]
        added, removed = skip - sent, sent - skip
        return [0, len(skip), len(added), *added, *removed]

    async def _next_due_s(self, owner: str, now_s: float) -> float | None:
        found = await self._require().run(
            "next_due", [owner, repr(float(now_s)), self._server_clock]
        )
        return None if found is None else float(found)

    async def _renew(
        self, owner: str, now_s: float, expires_s: float
    ) -> tuple[list[tuple[str, int]], list[str]]:
        args = self._lease_args(owner, now_s, expires_s)
        epoch, _, extended, expired = await self._require().write("renew", args)
        if epoch != self._epoch:
            await self.check_epoch()
        pairs = [(extended[i].decode(), int(extended[i + 1])) for i in range(0, len(extended), 2)]
        granted = self._held.task_ids(owner)
        strays = [Lease(i, owner, t, 0.0) for i, t in pairs if i not in granted]
        if strays:  # a claim whose reply was lost to a dropped connection
            logger.warning("redis store: releasing %d lease(s) never handed out", len(strays))
            await self.release(strays)
            pairs = [(i, t) for i, t in pairs if i in granted]
        return pairs, [i.decode() for i in expired]

    async def _release(self, leases: list[Lease]) -> None:
        args: list[Any] = []
        for lease in leases:
            args += (lease.task_id, lease.owner, lease.token)
        await self._require().write("release", args)

    async def _purge_finished(
        self,
        before_s: float,
        limit: int,
        task_types: list[str] | None,
        exclude_types: list[str],
    ) -> int:
        """Finished tasks are indexed per type by when they finished (``B:fin:<type>``)."""
        if task_types is not None:
            mode, named = "only", task_types
        else:
            mode, named = ("except", exclude_types) if exclude_types else ("all", [])
        args = [repr(before_s), limit, mode, *named]
        return int(await self._require().write("purge", args))

    async def _command(self, what: str, *command: Any) -> Any:
        """One plain Redis command, after the queued writes, retried while Redis is away."""
        runner, client = self._require(), self._client
        if client is None:
            raise StoreError(f"redis store {self!r} is not open")
        raw: Any = client  # redis-py's stubs differ between its versions
        await runner.drained()
        return await runner.read(lambda: raw.execute_command(*command), what)

    async def _sweep_forever(self) -> None:
        """With ``result_ttl_s``: purge finished tasks past it, every minute at most."""
        interval_s = min(_SWEEP_EVERY_S, self._ttl_ms / 1000)
        while True:
            await asyncio.sleep(interval_s)
            try:
                while await self.sweep() == _SWEEP_BATCH:
                    pass
            except Exception as exc:
                logger.warning("redis store %r: purging finished tasks failed: %s", self, exc)

    async def sweep(self, now_s: float | None = None, max_tasks: int = _SWEEP_BATCH) -> int:
        """Purge finished tasks whose ``result_ttl_s`` ran out; returns how many."""
        now = wall_now() if now_s is None else now_s
        # Tasks an older asched indexed by their purge time, then the finish-time index.
        old = int(await self._require().write("sweep", [repr(now), max_tasks]))
        return old + await self.purge_finished(now - self._ttl_ms / 1000, max_tasks - old)
