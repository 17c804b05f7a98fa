"""Events as an async iterator, and async subscribers.

``async for event in scheduler.events(): ...`` reads the scheduler's events
through a bounded queue.  The engine never waits for a reader: when the queue
is full the OLDEST queued event is dropped to make room for the new one (a slow
reader sees the most recent events and a gap, counted in
:attr:`EventStream.dropped`).  Leaving the ``async for`` (or ``async with``
block, or calling :meth:`EventStream.close`) unsubscribes.

An ``async def`` subscriber is run as a task per event, so it never holds up
the engine; its errors are logged.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Collection, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any

from asched.core.checks import require_int
from asched.events import Event
from asched.model import TaskLifecycle

if TYPE_CHECKING:
    from asched.scheduler import Scheduler

logger = logging.getLogger(__name__)

DEFAULT_STREAM_SIZE = 10_000

AnyListener = Callable[[Event], None] | Callable[[Event], Coroutine[Any, Any, None]]


def is_async_listener(listener: object) -> bool:
    return inspect.iscoroutinefunction(listener) or inspect.iscoroutinefunction(
        getattr(listener, "__call__", None)  # noqa: B004 - an object with async __call__
    )


def as_listener(listener: AnyListener) -> Callable[[Event], None]:
    """``listener`` itself if it is synchronous; an async one becomes a listener
    that starts it as a task on the running loop (errors logged, never raised)."""
    if not is_async_listener(listener):
        return listener  # type: ignore[return-value]
    running: set[asyncio.Task[None]] = set()

    def finished(task: asyncio.Task[None]) -> None:
        running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("async event listener %r failed", listener, exc_info=task.exception())

    def start(event: Event) -> None:
        task = asyncio.get_running_loop().create_task(listener(event))  # type: ignore[arg-type]
        running.add(task)  # a strong reference until it ends
        task.add_done_callback(finished)

    return start


class _Feed:
    """The queue the engine feeds.  Held by the subscription, not by the stream,
    so dropping the stream (leaving ``async for``) lets it unsubscribe."""

    __slots__ = ("dropped", "maxsize", "queue")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.dropped = 0
        # one slot more than maxsize, kept free for the end marker
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize + 1)

    def hear(self, event: Event) -> None:
        queue = self.queue
        if queue.qsize() >= self.maxsize:
            queue.get_nowait()
            self.dropped += 1
        queue.put_nowait(event)


class EventStream:
    """An async iterator over a scheduler's events (see the module doc for the
    drop policy).  Use it once; it ends when closed."""

    def __init__(
        self,
        scheduler: Scheduler,
        states: Collection[TaskLifecycle] | None = None,
        maxsize: int = DEFAULT_STREAM_SIZE,
    ) -> None:
        self._feed = _Feed(require_int("maxsize", maxsize, minimum=1))
        self._closed = False
        self._unsubscribe: Callable[[], None] | None = scheduler.subscribe(self._feed.hear, states)

    @property
    def dropped(self) -> int:
        """Events dropped because the reader fell ``maxsize`` events behind."""
        return self._feed.dropped

    def close(self) -> None:
        """Unsubscribe; a reader waiting for the next event gets StopAsyncIteration
        once it has read what was already queued."""
        if self._unsubscribe is None:
            return
        self._unsubscribe()
        self._unsubscribe = None
        self._feed.queue.put_nowait(None)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        if self._closed:
            raise StopAsyncIteration
        event = await self._feed.queue.get()
        if event is None:
            self._closed = True
            raise StopAsyncIteration
        return event

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Leaving ``async for`` drops the last reference: stop hearing events then.
        unsubscribe = getattr(self, "_unsubscribe", None)  # None if __init__ failed
        if unsubscribe is not None:
            unsubscribe()
            self._unsubscribe = None
