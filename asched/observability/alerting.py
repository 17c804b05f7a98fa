"""The alert manager: hears a scheduler's events, raises alerts, hands them to
the notifiers.  Created by :meth:`asched.Scheduler.add_notifier`.

It hears the outcome states (COMPLETED, FAILED, RETRYING: events the load
metrics make the engine build anyway) and the circuit breaker events; hearing
one only appends it to a list (no Python frame on the engine's path).  The
lists are read every ``tick_s`` of the scheduler's clock, so an alert goes out
within a tick.  Lateness is read from the same outcome events (each carries
the attempt's start and due times), so it costs nothing per task; a late start
is therefore noticed when that attempt ends.  The backlog
is sampled from ``get_system_load_metrics()`` (``ready`` + ``waiting_for_limits``).

Alerts are debounced per key (see :mod:`asched.observability.debounce`);
each notifier has its own bounded outbox and task.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asched.background import cancel_and_wait
from asched.clock import Clock, TimerHandle
from asched.core.checks import require_int, require_number
from asched.errors import ConfigError, SchedulerStateError
from asched.events import (
    CircuitClosed,
    CircuitOpened,
    Event,
    TaskCompleted,
    TaskEvent,
    TaskFailed,
    TaskRetrying,
)
from asched.model import TaskLifecycle
from asched.model.states import RUNNING
from asched.observability import rules
from asched.observability.alerts import Alert, AlertKind, Notifier, Severity, alert_time
from asched.observability.anomaly import (
    BacklogTrend,
    FailureRateBaseline,
    StormDetector,
)
from asched.observability.debounce import AlertGate
from asched.observability.outbox import Outbox
from asched.observability.thresholds import AlertThresholds

if TYPE_CHECKING:
    from asched.scheduler import Scheduler

logger = logging.getLogger(__name__)

#: attempts' outcomes: the states whose events are read at each tick
OUTCOME_STATES = (TaskLifecycle.COMPLETED, TaskLifecycle.FAILED, TaskLifecycle.RETRYING)


class AlertManager:
    def __init__(self, scheduler: Scheduler) -> None:
        self.thresholds = AlertThresholds()
        self.outboxes: list[Outbox] = []
        #: the latest alerts sent, newest last
        self.recent: deque[Alert] = deque(maxlen=200)
        self.scheduler = scheduler
        self._pending: list[Event] = []
        self._circuit_events: list[Event] = []
        self.late_starts: list[tuple[str, str, float, float]] = []
        self._unsubscribe: list[Callable[[], None]] = []
        self._timer: TimerHandle | None = None
        self._clock: Clock | None = None
        self._sampling: asyncio.Task[None] | None = None
        self.last_late_s: dict[str, float] = {}
        #: workers of a shared store seen lost at the last sample
        self.lost_workers: set[str] = set()
        self.retries_by_type: Counter[str] = Counter()
        self._next_sample_s = 0.0
        self._build_detectors()
        # Heard from now on: tasks recovered at start may end before services start.
        self._subscribe()

    def _subscribe(self) -> None:
        if not self._unsubscribe:
            subscribe = self.scheduler.subscribe
            self._unsubscribe = [
                subscribe(self._pending.append, OUTCOME_STATES),
                subscribe(self._circuit_events.append, ()),
            ]

    def _build_detectors(self) -> None:
        t = self.thresholds
        self.gate = AlertGate(t.repeat_s, t.max_per_minute)
        self.failure_rate = FailureRateBaseline(
            t.failure_bucket_s,
            t.failure_alpha,
            t.failure_rise,
            t.failure_min_volume,
            t.failure_warmup,
        )
        self.retry_storm = StormDetector(t.retry_storm_count, t.retry_storm_window_s)
        self.backlog = BacklogTrend(t.backlog_window_s, t.backlog_growth_per_s, t.backlog_min)

    @property
    def running(self) -> bool:
        return self._clock is not None

    def add(
        self,
        notifier: Notifier,
        *,
        outbox_size: int = 100,
        notify_timeout_s: float = 30.0,
        **thresholds: Any,
    ) -> None:
        """Send alerts to ``notifier`` too, through its own outbox of ``outbox_size``
        alerts, each delivery allowed ``notify_timeout_s``.  ``thresholds`` change
        :class:`AlertThresholds` fields for every notifier (only before start)."""
        outbox = Outbox(
            notifier,
            require_int("outbox_size", outbox_size, minimum=1, error=ConfigError),
            require_number("notify_timeout_s", notify_timeout_s, above=0, error=ConfigError),
        )
        if thresholds:
            if self.running:
                raise SchedulerStateError("alert thresholds can only change before start()")
            self.thresholds = self.thresholds.updated(**thresholds)
            self._build_detectors()
        self.outboxes.append(outbox)
        if self.running:
            outbox.start()
        elif self.scheduler.running:
            self._begin()

    # -- service -----------------------------------------------------------------------

    async def start(self) -> None:
        self._begin()

    def _begin(self) -> None:
        if self.running:
            return
        self._subscribe()
        self._clock = self.scheduler.clock
        self._next_sample_s = self._clock.now()
        for outbox in self.outboxes:
            outbox.start()
        self._arm()

    async def stop(self) -> None:
        if not self.running:
            return
        self._tick()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        if self._timer is not None:
            self._timer.cancel()
        self._clock = None
        await cancel_and_wait(self._sampling)
        await asyncio.gather(*(outbox.stop() for outbox in self.outboxes))

    def _arm(self) -> None:
        clock = self._clock
        if clock is not None:
            self._timer = clock.call_at(clock.now() + self.thresholds.tick_s, self._on_timer)

    def _on_timer(self) -> None:
        if self._clock is None:
            return
        try:
            self._tick()
        except Exception:
            logger.exception("alert manager tick failed")
        self._arm()

    # -- hooks for other parts (cluster code, apps) --------------------------------------

    def raise_condition(
        self, kind: AlertKind, key: str, title: str, severity: Severity, **details: Any
    ) -> bool:
        """Open condition ``key``: notifies unless it is already open (True if sent)."""
        now = self._now()
        if not self.gate.opens(key, now):
            return False
        self.send(Alert(kind, severity, title, key, alert_time(now), details))
        return True

    def resolve_condition(self, kind: AlertKind, key: str, title: str, **details: Any) -> bool:
        """Close condition ``key``: sends its resolution if it was open (True if sent)."""
        if not self.gate.closes(key):
            return False
        now = alert_time(self._now())
        self.send(Alert(kind, Severity.INFO, title, key, now, details, resolved=True))
        return True

    def worker_lost(self, worker_id: str, reason: str = "") -> bool:
        """A worker of the cluster stopped answering (call from the cluster code)."""
        return self.raise_condition(
            AlertKind.WORKER_LOST,
            f"worker_lost:{worker_id}",
            f"worker {worker_id} lost",
            Severity.CRITICAL,
            worker_id=worker_id,
            reason=reason,
        )

    def worker_back(self, worker_id: str) -> bool:
        return self.resolve_condition(
            AlertKind.WORKER_LOST,
            f"worker_lost:{worker_id}",
            f"worker {worker_id} is back",
            worker_id=worker_id,
        )

    # -- hearing ------------------------------------------------------------------------

    def _now(self) -> float:
        return (self._clock or self.scheduler.clock).now()

    def _tick(self) -> None:
        now = self._now()
        for heard in (self._pending, self._circuit_events):
            events, heard[:] = heard[:], []
            for event in events:
                self._fold(event)
        rules.judge_failure_rate(self, self.failure_rate.close_until(now))
        rules.judge_retry_storm(self, now)
        rules.judge_lateness(self, now)
        for alert in self.gate.summaries(now):
            self.send(alert)
        if now >= self._next_sample_s and (self._sampling is None or self._sampling.done()):
            self._next_sample_s = now + self.thresholds.backlog_sample_s
            self._sampling = asyncio.get_running_loop().create_task(rules.sample_backlog(self, now))

    def _fold(self, event: Event) -> None:
        kind = type(event)
        if kind is TaskCompleted or kind is TaskRetrying or kind is TaskFailed:
            assert isinstance(event, TaskEvent)
            if event.from_state is RUNNING:
                failed = kind is not TaskCompleted
                rules.judge_failure_rate(self, self.failure_rate.record(event.at_s, failed))
                self._judge_start(event)
            if kind is TaskRetrying:
                self.retry_storm.window.add(event.at_s)
                self.retries_by_type[event.task_type] += 1
            elif kind is TaskFailed:
                rules.task_failed(self, event)
        elif kind is CircuitOpened or kind is CircuitClosed:
            assert isinstance(event, CircuitOpened | CircuitClosed)
            rules.circuit_changed(self, event)

    def _judge_start(self, event: TaskEvent) -> None:
        limit, started_s = self.thresholds.lateness_s, event.started_s
        if limit is not None and started_s is not None and started_s - event.due_s >= limit:
            late_s = started_s - event.due_s
            self.late_starts.append((event.task_id, event.task_type, started_s, late_s))

    def send(self, alert: Alert) -> None:
        self.recent.append(alert)
        logger.debug("alert %s: %s", alert.key, alert.title)
        for outbox in self.outboxes:
            outbox.post(alert)
