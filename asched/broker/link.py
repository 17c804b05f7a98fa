"""BrokerLink: one AMQP connection kept open, reconnecting with capped backoff.

After every (re)connect the owner's ``on_connected(channel)`` declares what it
needs and starts consuming; ``on_lost()`` is called when the connection or its
channel goes away.  The URL's password never reaches a log line.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

import aiormq
from aiormq.abc import AbstractChannel, AbstractConnection

from asched.background import cancel_and_wait

logger = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0


_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def redact(text: str) -> str:
    """``text`` with the password of any URL in it replaced by ``***``, fit for logs."""
    return _PASSWORD.sub(r"\1***@", text)


class BrokerLink:
    """Keeps one connection and one confirming channel up until :meth:`close`."""

    def __init__(
        self,
        url: str,
        name: str,
        on_connected: Callable[[AbstractChannel], Awaitable[None]],
        on_lost: Callable[[], None],
    ) -> None:
        self._url = url
        self._name = name
        self._on_connected = on_connected
        self._on_lost = on_lost
        self.channel: AbstractChannel | None = None
        self._connection: AbstractConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self.connects = 0
        self.up = asyncio.Event()

    @property
    def safe_url(self) -> str:
        return redact(self._url)

    def start(self) -> None:
        if self._runner is None:
            self._closing = False
            self._runner = asyncio.get_running_loop().create_task(self._keep_up())

    async def close(self) -> None:
        self._closing = True
        runner, self._runner = self._runner, None
        await cancel_and_wait(runner)
        await self._drop()

    async def _keep_up(self) -> None:
        backoff_s = BACKOFF_MIN_S
        while not self._closing:
            try:
                channel = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "broker %s unreachable (%s); retrying in %.1fs",
                    self.safe_url,
                    _describe(exc),
                    backoff_s,
                )
                await self._drop()
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)
                continue
            backoff_s = BACKOFF_MIN_S
            await _first_done(channel.closing, self._connection_closing())
            if self._closing:
                return
            logger.warning("lost the broker %s; reconnecting", self.safe_url)
            await self._drop()

    async def _connect(self) -> AbstractChannel:
        connection = await aiormq.connect(
            self._url, client_properties={"connection_name": self._name}
        )
        self._connection = connection
        channel = await connection.channel(publisher_confirms=True)
        await self._on_connected(channel)
        self.channel = channel
        self.connects += 1
        self.up.set()
        if self.connects > 1:
            logger.info("reconnected to the broker %s", self.safe_url)
        return channel

    def _connection_closing(self) -> asyncio.Future[object]:
        assert self._connection is not None
        closing: asyncio.Future[object] = self._connection.closing
        return closing

    async def _drop(self) -> None:
        """Forget the current connection (closing it if it is still open)."""
        was_up = self.channel is not None
        self.channel = None
        self.up.clear()
        connection, self._connection = self._connection, None
        if was_up:
            self._on_lost()
        if connection is not None and not connection.is_closed:
            try:
                async with asyncio.timeout(2.0):
                    await connection.close()
            except (Exception, asyncio.CancelledError) as exc:
                if isinstance(exc, asyncio.CancelledError) and not self._closing:
                    raise
                logger.debug("closing the broker connection: %s", _describe(exc))


async def _first_done(*futures: asyncio.Future[object]) -> None:
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in futures:
            if not future.done():
                future.cancel()


def _describe(exc: BaseException) -> str:
    text = redact(str(exc))  # aiormq errors can carry the connection URL
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
