"""Optional OpenTelemetry spans around task runs (the ``otel`` extra:
``pip install 'asched[otel]'``, plus an SDK and exporter of your choice).

Built from events, so the engine knows nothing of tracing: a task entering
RUNNING opens a span ``run <task type>``; the attempt's end (COMPLETED, FAILED,
RETRYING, or handed back QUEUED / CANCELLED / PAUSED) closes it, with status
ERROR and the reason unless it completed.  Times are the scheduler clock's.
The span is not made current inside the handler (the handler runs elsewhere),
so spans a handler opens are not its children.

Without ``opentelemetry-api`` installed, :class:`TaskTracer` does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asched.events import Event, TaskEvent
from asched.model import TaskLifecycle

if TYPE_CHECKING:
    from asched.scheduler import Scheduler

logger = logging.getLogger(__name__)

#: the states an attempt can end in
ATTEMPT_ENDS = (
    TaskLifecycle.COMPLETED,
    TaskLifecycle.FAILED,
    TaskLifecycle.RETRYING,
    TaskLifecycle.QUEUED,
    TaskLifecycle.CANCELLED,
    TaskLifecycle.PAUSED,
)


def _trace_api() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace


def _ns(epoch_s: float) -> int:
    return int(epoch_s * 1e9)


class TaskTracer:
    """Spans around task runs; see the module doc."""

    def __init__(self, scheduler: Scheduler, tracer_provider: Any = None) -> None:
        self._trace = _trace_api()
        #: False when opentelemetry-api is not installed: nothing is traced
        self.enabled = self._trace is not None
        self._spans: dict[str, Any] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        if self._trace is None:
            logger.debug("opentelemetry-api is not installed: task runs are not traced")
            return
        from asched import __version__

        self._tracer = self._trace.get_tracer("asched", __version__, tracer_provider)
        self._unsubscribe = [
            scheduler.subscribe(self._started, (TaskLifecycle.RUNNING,)),
            scheduler.subscribe(self._ended, ATTEMPT_ENDS),
        ]

    @property
    def open_spans(self) -> int:
        return len(self._spans)

    def close(self) -> None:
        """Stop tracing; spans still open are ended now."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        for span in self._spans.values():
            span.end()
        self._spans.clear()

    def _started(self, event: Event) -> None:
        assert isinstance(event, TaskEvent)
        span = self._tracer.start_span(
            f"run {event.task_type}",
            kind=self._trace.SpanKind.CONSUMER,
            start_time=_ns(event.at_s),
            attributes={
                "asched.task.id": event.task_id,
                "asched.task.type": event.task_type,
                "asched.task.priority": event.priority.name,
            },
        )
        previous = self._spans.pop(event.task_id, None)
        if previous is not None:  # an attempt whose end was never heard
            previous.end()
        self._spans[event.task_id] = span

    def _ended(self, event: Event) -> None:
        assert isinstance(event, TaskEvent)
        span = self._spans.pop(event.task_id, None)
        if span is None:
            return
        outcome = event.to_state.name
        span.set_attribute("asched.task.outcome", outcome)
        if event.to_state is TaskLifecycle.COMPLETED:
            span.set_status(self._trace.StatusCode.OK)
        else:
            span.set_status(self._trace.StatusCode.ERROR, event.reason or outcome)
        span.end(end_time=_ns(event.at_s))
