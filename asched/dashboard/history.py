"""The last hour of metrics, sampled in the background, for the page's charts.

Every numeric top-level metric is kept, so a key the scheduler adds later is
charted without a change here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from asched.background import cancel_and_wait
from asched.clock import wall_now
from asched.dashboard.views import numeric_values

logger = logging.getLogger(__name__)

HOUR_S = 3600.0


class MetricsHistory:
    def __init__(self, interval_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self.samples: deque[tuple[float, dict[str, float]]] = deque(
            maxlen=int(HOUR_S / interval_s) + 1
        )
        self._task: asyncio.Task[None] | None = None

    def record(self, at_s: float, metrics: dict[str, Any]) -> None:
        if self.samples and at_s - self.samples[-1][0] < self.interval_s / 2:
            return  # a request and the sampler raced; one sample per interval is enough
        self.samples.append((at_s, numeric_values(metrics)))

    def as_dict(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval_s,
            "samples": [{"at": at, **values} for at, values in self.samples],
        }

    def start(self, read: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._sample_forever(read))

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _sample_forever(self, read: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        while True:
            try:
                self.record(wall_now(), await read())
            except Exception:
                logger.exception("sampling the dashboard metrics failed")
            await asyncio.sleep(self.interval_s)
