"""One notifier's outbox: a bounded queue drained by the notifier's own task.

Posting never waits: when the queue is full the oldest alert is dropped (and
counted).  Each delivery is given ``timeout_s``; a notifier that raises or runs
over is logged and the next alert goes out.  So a slow or failing notifier can
delay only its own alerts, never the scheduler.
"""

from __future__ import annotations

import asyncio
import logging

from asched.background import cancel_and_wait
from asched.observability.alerts import Alert, Notifier

logger = logging.getLogger(__name__)


class Outbox:
    def __init__(self, notifier: Notifier, maxsize: int = 100, timeout_s: float = 30.0) -> None:
        self.notifier = notifier
        self.timeout_s = timeout_s
        self.maxsize = maxsize
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._deliver_forever())

    async def stop(self, flush_s: float = 1.0) -> None:
        """Give queued alerts up to ``flush_s`` to go out, then stop."""
        task, self._task = self._task, None
        if task is None:
            return
        if not self._queue.empty():
            queue_done = asyncio.ensure_future(self._queue.join())
            await asyncio.wait([queue_done], timeout=flush_s)
            queue_done.cancel()
        await cancel_and_wait(task)

    def post(self, alert: Alert) -> None:
        queue = self._queue
        if queue.full():
            queue.get_nowait()
            queue.task_done()
            self.dropped += 1
            logger.warning("notifier %r is behind: dropped an alert", self.notifier)
        queue.put_nowait(alert)

    async def _deliver_forever(self) -> None:
        queue = self._queue
        while True:
            alert = await queue.get()
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self.notifier.notify(alert)
                self.sent += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failed += 1
                logger.exception("notifier %r failed on alert %s", self.notifier, alert.key)
            finally:
                queue.task_done()
