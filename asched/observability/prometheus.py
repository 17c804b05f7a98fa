"""Prometheus exposition (the ``metrics`` extra: ``pip install 'asched[metrics]'``).

:class:`PrometheusExporter` serves, on 127.0.0.1 by default:

* every number in ``get_system_load_metrics()`` as a gauge ``asched_<key>``; a
  dict of numbers becomes one gauge labelled ``key`` (a dict of dicts adds
  ``key_2``), and a dict of text (breaker states) a gauge labelled ``key`` and
  ``state`` worth 1, so new keys are exported without a change here;
* ``asched_task_outcomes_total{task_type, outcome}``, counted from events:
  ``completed``, ``failed`` (for good) and ``retried``.

The HTTP server is prometheus-client's own, on a thread.  That thread never
touches the scheduler: the loop refreshes a snapshot every ``refresh_s`` and
the thread serves the latest one (so a scrape is at most ``refresh_s`` old).
Events only append to a list on the engine's path; they are counted at refresh.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from asched.background import cancel_and_wait
from asched.core.checks import require_int, require_number
from asched.errors import ConfigError
from asched.events import Event
from asched.model import TaskLifecycle

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from asched.scheduler import Scheduler

logger = logging.getLogger(__name__)

OUTCOMES = {
    TaskLifecycle.COMPLETED: "completed",
    TaskLifecycle.FAILED: "failed",
    TaskLifecycle.RETRYING: "retried",
}
OUTCOMES_FAMILY = "asched_task_outcomes"
_NOT_IN_A_NAME = re.compile(r"[^a-zA-Z0-9_]")


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ConfigError(
            "metrics_port", None, "needs prometheus-client: pip install 'asched[metrics]'"
        ) from exc
    return prometheus_client


def metric_name(key: str) -> str:
    return "asched_" + _NOT_IN_A_NAME.sub("_", key)


def flatten(value: Any, labels: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """The leaves of ``value`` (dicts of dicts of ...), each with its path."""
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from flatten(inner, (*labels, str(key)))
    elif value is not None:
        yield labels, value


def gauge_samples(value: Any) -> tuple[list[str], list[tuple[list[str], float]]]:
    """Label names and samples for one figure: its numbers; or, if it holds none, its
    text leaves as a ``state`` label worth 1 (``{"smtp": "open"}`` gives
    ``{key="smtp", state="open"} 1``).  Other leaves are left out."""
    leaves = list(flatten(value))
    numbers = [(list(p), float(v)) for p, v in leaves if isinstance(v, int | float)]  # bool too
    if numbers:
        depth = max(len(path) for path, _ in numbers)
        return _key_labels(depth), [(p + [""] * (depth - len(p)), n) for p, n in numbers]
    texts = [(list(p), v) for p, v in leaves if isinstance(v, str)]
    depth = max((len(path) for path, _ in texts), default=0)
    samples = [(p + [""] * (depth - len(p)) + [text], 1.0) for p, text in texts]
    return [*_key_labels(depth), "state"], samples


def _key_labels(depth: int) -> list[str]:
    return ["key", *(f"key_{n}" for n in range(2, depth + 1))] if depth else []


class SchedulerCollector:
    """A prometheus-client collector over a snapshot the loop refreshes."""

    def __init__(self) -> None:
        self.pending: list[Event] = []
        #: (task type, outcome) -> count, since start
        self.outcomes: dict[tuple[str, str], int] = {}
        self._snapshot: tuple[dict[str, Any], dict[tuple[str, str], int]] = ({}, {})

    def count(self) -> None:
        events, self.pending[:] = self.pending[:], []
        outcomes = self.outcomes
        for event in events:
            key = (event[1], OUTCOMES[event[5]])  # type: ignore[index]
            outcomes[key] = outcomes.get(key, 0) + 1

    def publish(self, figures: dict[str, Any]) -> None:
        # one tuple swapped in whole: the server thread reads either the old or the new
        self._snapshot = (dict(figures), dict(self.outcomes))

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        figures, outcomes = self._snapshot
        for key, value in figures.items():
            name = metric_name(key)
            labels, samples = gauge_samples(value)
            if not samples or name == OUTCOMES_FAMILY:
                continue
            gauge = GaugeMetricFamily(name, f"get_system_load_metrics()[{key!r}]", labels=labels)
            for values, number in samples:
                gauge.add_metric(values, number)
            yield gauge
        counter = CounterMetricFamily(
            OUTCOMES_FAMILY, "Task outcomes by type", labels=["task_type", "outcome"]
        )
        for (task_type, outcome), count in sorted(outcomes.items()):
            counter.add_metric([task_type, outcome], count)
        yield counter


class PrometheusExporter:
    """Serve a scheduler's metrics for Prometheus; a service of the scheduler
    (see :meth:`asched.Scheduler.serve_metrics`)."""

    def __init__(
        self, scheduler: Scheduler, port: int, host: str = "127.0.0.1", refresh_s: float = 1.0
    ) -> None:
        self._client = _prometheus()
        self.host = host
        self.requested_port = require_int(
            "metrics_port", port, minimum=0, maximum=65535, error=ConfigError
        )
        self.refresh_s = require_number("refresh_s", refresh_s, above=0, error=ConfigError)
        self.collector = SchedulerCollector()
        self.registry = self._client.CollectorRegistry()
        self.registry.register(self.collector)
        self._scheduler = scheduler
        # Heard from now on: tasks recovered at start may finish before services start.
        self._unsubscribe: Callable[[], None] | None = None
        self._subscribe()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._refresher: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port served on (the one chosen by the system when asked for 0)."""
        if self._server is None:
            return self.requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    async def start(self) -> None:
        if self._server is not None:
            return
        self._subscribe()
        await self.refresh()
        self._server, self._thread = self._client.start_http_server(
            self.requested_port, addr=self.host, registry=self.registry
        )
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())
        logger.info("prometheus metrics on %s", self.url)

    def _subscribe(self) -> None:
        if self._unsubscribe is None:
            listener = self.collector.pending.append
            self._unsubscribe = self._scheduler.subscribe(listener, OUTCOMES)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await cancel_and_wait(self._refresher)
        self._refresher = None
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(_close, server, self._thread)

    async def refresh(self) -> None:
        """Count the events heard so far and publish fresh figures."""
        figures = await self._scheduler.get_system_load_metrics()
        self.collector.count()
        self.collector.publish(figures)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except Exception:
                logger.exception("refreshing the prometheus metrics failed")


def _close(server: Any, thread: threading.Thread | None) -> None:
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout=5)
