"""Noticing other processes' writes without polling: a pub/sub channel per prefix.

Every pipeline of writes that can give other workers something to do (inserts,
saves, releases) ends with ``PUBLISH <base>:changed <origin>``, where the
origin is random per store object.  A worker's :class:`ChangeWatch` listens on
that channel on a connection of its own and raises a flag for any message from
another origin; the scheduler's poller reads (and lowers) the flag through
``Store.changed_elsewhere`` every 50 ms, a local check that costs Redis
nothing.  An idle cluster therefore exchanges no messages at all.

Pub/sub is fire-and-forget: a message sent while the watch is reconnecting is
lost.  So the flag is also raised whenever the subscription is (re)made, and
the poller still claims every ``poll_interval_s`` whatever the flag says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from abc import ABC, abstractmethod
from typing import Any

from redis.asyncio import Redis

from asched.background import cancel_and_wait
from asched.stores.redis.keys import RedisKeys

logger = logging.getLogger(__name__)

#: The scripts whose writes can give another worker work (or news) to act on.
WAKING_SCRIPTS = frozenset({"insert", "save", "release"})


def new_origin() -> str:
    return secrets.token_hex(8)


class ChangeWatch:
    """Listens for other origins' writes; :meth:`take` says whether any came."""

    def __init__(self, client: Redis, channel: str, origin: str) -> None:
        self._client = client
        self._channel = channel
        self._origin = origin.encode()
        self._changed = True
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen_forever())

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def take(self) -> bool:
        """Whether another process wrote since the last call (True at first)."""
        changed, self._changed = self._changed, False
        return changed

    async def _listen_forever(self) -> None:
        delay_s = 0.05
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: resubscribe with backoff
                self._changed = True
                logger.debug("redis change watch: %s; resubscribing", exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 2.0)

    async def _listen(self) -> None:
        pubsub: Any = self._client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            while True:
                message = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    # Redis has the subscription now: what was sent before it is
                    # unknown, so say "changed" once.
                    self._changed = True
                elif message["type"] == "message" and message["data"] != self._origin:
                    self._changed = True
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


class RedisWakeups(ABC):
    """Mixed into :class:`asched.stores.redis.RedisStore`: announcing this store's
    writes and hearing other processes'."""

    keys: RedisKeys
    _client: Redis | None
    _origin: str
    _watch: ChangeWatch | None

    @abstractmethod
    async def _command(self, what: str, *command: Any) -> Any: ...

    async def _announce(self) -> None:
        await self._command("announcing a change", "PUBLISH", self.keys.changed, self._origin)

    async def changed_elsewhere(self) -> bool | None:
        """Whether another process published a write since the last call; the first
        call starts listening."""
        if self._client is None:
            return None
        if self._watch is None:
            self._watch = ChangeWatch(self._client, self.keys.changed, self._origin)
            self._watch.start()
        return self._watch.take()
