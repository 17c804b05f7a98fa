"""The Redis task queues benchmarks/redis.py compares asched with, behind one small interface.

Each runs the same no-op handler (it counts itself and sets an event at the
N-th call; with a due time in the payload it records its lateness), one
in-process worker with the same concurrency, and the library's defaults
otherwise.  Imports are lazy: a peer that is not installed is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any


class Counter:
    """Counts handler calls; ``done`` is set at the target.  Records lateness."""

    def __init__(self) -> None:
        #: in a worker process: a shared integer the parent reads (see _redis_workers)
        self.shared: Any = None
        self.reset(0)

    def reset(self, target: int) -> asyncio.Event:
        self.count, self.target = 0, target
        self.late_s: list[float] = []
        self.done = asyncio.Event()
        return self.done

    def hit(self, due: float | None = None) -> None:
        if due is not None:
            self.late_s.append(time.time() - due)
        self.count += 1
        if self.count == self.target:
            self.done.set()
        if self.shared is not None:
            self.shared.value += 1


COUNTER = Counter()


class Peer:
    """One library: enqueue one by one, in a batch (if offered), drain, delayed tasks."""

    name = ""
    batch_api = ""  # the bulk enqueue call, when the library has one

    def __init__(self, url: str, concurrency: int) -> None:
        #: the server's URL as given (a peer may add to ``url``)
        self.url_given = url
        self.url = url
        self.concurrency = concurrency

    async def enqueue(self, n: int, batch: bool, due: float | None = None) -> None:
        raise NotImplementedError

    async def run_worker(self, until: Callable[[], Awaitable[Any]]) -> None:
        raise NotImplementedError

    async def lateness(self, dues: list[float]) -> None:
        """Run a worker while tasks due at ``dues`` (epoch s) are enqueued, until all ran."""

        async def feed_then_wait() -> None:
            for due in dues:
                await self.enqueue(1, False, due)
            await COUNTER.done.wait()

        await self.run_worker(feed_then_wait)

    async def close(self) -> None:
        return None


async def _run_until(main: Awaitable[Any], until: Callable[[], Awaitable[Any]]) -> None:
    """Run a worker's main coroutine until ``until()`` returns, then cancel it."""
    task = asyncio.ensure_future(main)
    try:
        waiter = asyncio.ensure_future(until())
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # the worker died: say why
        await waiter
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


class Arq(Peer):
    name = "arq"

    async def _pool(self) -> Any:
        from arq import create_pool
        from arq.connections import RedisSettings

        if not hasattr(self, "pool"):
            self.pool = await create_pool(RedisSettings.from_dsn(self.url))
        return self.pool

    async def enqueue(self, n: int, batch: bool, due: float | None = None) -> None:
        pool = await self._pool()
        if due is None:
            for i in range(n):
                await pool.enqueue_job("noop", i)
        else:
            when = datetime.fromtimestamp(due, UTC)
            for i in range(n):
                await pool.enqueue_job("noop", i, due, _defer_until=when)

    async def run_worker(self, until: Callable[[], Awaitable[Any]]) -> None:
        from arq.worker import Worker, func

        async def noop(ctx: dict[str, Any], n: int, due: float | None = None) -> None:
            COUNTER.hit(due)

        worker = Worker(
            functions=[func(noop, name="noop")],
            redis_pool=await self._pool(),
            max_jobs=self.concurrency,
            handle_signals=False,
            keep_result=0,
        )
        try:
            await _run_until(worker.async_run(), until)
        finally:
            with contextlib.suppress(asyncio.CancelledError):
                await worker.close()

    async def close(self) -> None:
        if hasattr(self, "pool"):
            await self.pool.aclose()


class Saq(Peer):
    name = "saq"

    async def _queue(self) -> Any:
        from saq import Queue

        if not hasattr(self, "queue"):
            self.queue = Queue.from_url(self.url, name="bench")
            await self.queue.connect()
        return self.queue

    async def enqueue(self, n: int, batch: bool, due: float | None = None) -> None:
        queue = await self._queue()
        if due is None:
            for i in range(n):
                await queue.enqueue("noop", n=i)
        else:  # SAQ schedules to the whole second: round up, never early
            for i in range(n):
                await queue.enqueue("noop", n=i, due=due, scheduled=math.ceil(due))

    async def run_worker(self, until: Callable[[], Awaitable[Any]]) -> None:
        from saq import Worker

        async def noop(ctx: Any, *, n: int, due: float | None = None) -> None:
            COUNTER.hit(due)

        queue = await self._queue()
        worker = Worker(queue, functions=[("noop", noop)], concurrency=self.concurrency)
        try:
            await _run_until(worker.start(), until)
        finally:
            await worker.stop()

    async def close(self) -> None:
        if hasattr(self, "queue"):
            await self.queue.disconnect()


class Streaq(Peer):
    name = "streaq"
    batch_api = "worker.enqueue_many"

    def _worker(self) -> tuple[Any, Any]:
        """A fresh worker object each time: one must not be entered twice."""
        from streaq import Worker

        worker = Worker(
            redis_url=self.url,
            concurrency=self.concurrency,
            queue_name="bench",
            handle_signals=False,
        )

        @worker.task()
        async def noop(n: int, due: float | None = None) -> None:
            COUNTER.hit(due)

        return worker, noop

    async def enqueue(self, n: int, batch: bool, due: float | None = None) -> None:
        worker, noop = self._worker()
        async with worker:
            if due is not None:
                when = datetime.fromtimestamp(due, UTC)
                for i in range(n):
                    await noop.enqueue(i, due).start(schedule=when)
            elif batch:
                await worker.enqueue_many([noop.enqueue(i) for i in range(n)])
            else:
                for i in range(n):
                    await noop.enqueue(i)

    async def run_worker(self, until: Callable[[], Awaitable[Any]]) -> None:
        worker, _ = self._worker()
        await _run_until(worker.run_async(), until)


class Taskiq(Peer):
    name = "taskiq"

    def _broker(self) -> Any:
        from taskiq_redis import ListQueueBroker

        if not hasattr(self, "broker"):
            broker = ListQueueBroker(self.url, queue_name="bench")

            @broker.task(task_name="noop")
            async def noop(n: int, due: float | None = None) -> None:
                COUNTER.hit(due)

            self.broker, self.noop = broker, noop
        return self.broker

    async def enqueue(self, n: int, batch: bool, due: float | None = None) -> None:
        if due is not None:
            raise NotImplementedError("taskiq delays need its separate scheduler process")
        broker = self._broker()
        await broker.startup()
        for i in range(n):
            await self.noop.kiq(i)

    async def run_worker(self, until: Callable[[], Awaitable[Any]]) -> None:
        from taskiq.receiver import Receiver

        broker = self._broker()
        broker.is_worker_process = True
        await broker.startup()
        receiver = Receiver(broker, max_async_tasks=self.concurrency, run_startup=False)
        finish = asyncio.Event()
        try:
            await _run_until(receiver.listen(finish), until)
        finally:
            finish.set()
            broker.is_worker_process = False

    async def close(self) -> None:
        if hasattr(self, "broker"):
            await self.broker.shutdown()


PEERS: list[type[Peer]] = [Arq, Saq, Streaq, Taskiq]


def later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
