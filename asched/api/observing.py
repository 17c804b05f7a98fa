"""Scheduler's methods for watching it: events, alerts, metrics, tracing, forecast."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, cast

from asched.engine.loop import Engine
from asched.engine.policies import Policies
from asched.engine.schedules import ScheduleRunner
from asched.errors import SchedulerStateError
from asched.model import TaskLifecycle
from asched.observability import insight
from asched.observability.alerting import AlertManager
from asched.observability.alerts import Notifier
from asched.observability.metrics import LoadMetrics
from asched.observability.prometheus import PrometheusExporter
from asched.observability.stream import AnyListener, EventStream, as_listener
from asched.observability.tracing import TaskTracer

if TYPE_CHECKING:
    from asched.scheduler import Scheduler


class ObservingMethods:
    _engine: Engine
    _policies: Policies
    _schedules: ScheduleRunner
    _metrics: LoadMetrics
    _alerts: AlertManager | None

    def _scheduler(self) -> Scheduler:
        return cast("Scheduler", self)

    def subscribe(
        self, listener: AnyListener, states: Collection[TaskLifecycle] | None = None
    ) -> Callable[[], None]:
        """Call ``listener`` with every event (or only with those of tasks entering
        ``states``; ``states=()``: circuit breaker events alone); an ``async def``
        listener runs as a task.  Returns a function that unsubscribes."""
        return self._engine.subscribe(as_listener(listener), states)

    def events(
        self, states: Collection[TaskLifecycle] | None = None, maxsize: int = 10_000
    ) -> EventStream:
        """``async for event in scheduler.events()``: a bounded stream of events (a
        reader ``maxsize`` behind loses the oldest); see :mod:`asched.observability.stream`."""
        return EventStream(self._scheduler(), states, maxsize)

    def add_notifier(self, notifier: Notifier, **thresholds: Any) -> AlertManager:
        """Send alerts (failures, open circuits, retry storms, anomalies) to ``notifier``;
        ``thresholds`` are :class:`~asched.observability.thresholds.AlertThresholds` fields."""
        if self._alerts is None:
            self._alerts = AlertManager(self._scheduler())
            self._engine.attach(self._alerts)
        self._alerts.add(notifier, **thresholds)
        return self._alerts

    def serve_metrics(self, port: int = 0, host: str = "127.0.0.1") -> PrometheusExporter:
        """Serve Prometheus metrics on ``host:port`` from start() to stop() (call before
        start; needs the ``metrics`` extra); see :mod:`asched.observability.prometheus`."""
        if self._engine.is_running or self._engine.is_closing:
            raise SchedulerStateError("serve_metrics() must be called before start()")
        exporter = PrometheusExporter(self._scheduler(), port, host)
        self._engine.attach(exporter)
        return exporter

    def trace_tasks(self, tracer_provider: Any = None) -> TaskTracer:
        """OpenTelemetry spans around task runs, if ``opentelemetry-api`` is installed
        (``.enabled`` says); see :mod:`asched.observability.tracing`."""
        return TaskTracer(self._scheduler(), tracer_provider)

    def breaker_states(self) -> dict[str, str]:
        """Each circuit breaker's state: ``closed``, ``open`` or ``half_open``."""
        states = self._policies.breaker_states(self._engine.clock.now())
        return {name: state.value for name, state in states.items()}

    async def get_system_load_metrics(self) -> dict[str, Any]:
        """This process's figures; with a shared store also ``"cluster"``: the
        figures every live worker sent with its last heartbeat, added up (see
        :func:`asched.observability.insight.cluster_figures`)."""
        engine = self._engine
        figures = insight.load_metrics(engine, self._metrics, self.breaker_states())
        if engine.shared_coordinator is not None:
            records = await engine.store.list_workers()
            figures["cluster"] = insight.cluster_figures(records, engine.clock.now())
        return figures

    async def get_task_execution_forecast(
        self,
        lookahead_hours: float = 24,
        *,
        task_type: str | None = None,
        bucket: str = "hour",
        upcoming_limit: int = 1000,
    ) -> dict[str, Any]:
        """Every one-off and recurring run expected in the next ``lookahead_hours``:
        counts per bucket by type and priority, the expected busy seconds per bucket
        (from each type's measured mean duration) and the upcoming runs."""
        return insight.forecast(
            self._engine,
            self._schedules.schedules.values(),
            self._metrics,
            lookahead_hours,
            task_type,
            bucket,
            upcoming_limit,
        )
