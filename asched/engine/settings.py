"""The engine's settings and views: replacing the store, limits, gates, executors
going down and up, attached services, event subscriptions, and the read-only
views (counts, timers, the held tasks, whether it runs).

:class:`asched.engine.loop.Engine` inherits them; they change or read the
engine's parts and never move a task (that is ``Engine.move``'s job).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable

from asched.core.limits import ConcurrencyLimits
from asched.engine.hub import EventHub, Listener, Service
from asched.engine.ready import ReadyLine
from asched.engine.registry import Registry
from asched.engine.timers import ArmedWheel
from asched.engine.writeback import WriteBack
from asched.errors import SchedulerCrashedError, SchedulerStateError
from asched.model import Task, TaskLifecycle
from asched.stores import Store
from asched.stores.memory import MemoryStore


class EngineSettings(ABC):
    """Mixed into :class:`asched.engine.loop.Engine`, which sets these attributes."""

    registry: Registry
    limits: ConcurrencyLimits[str, Task]
    line: ReadyLine
    hub: EventHub
    services: list[Service]
    active: dict[str, Task]
    state_counts: list[int]
    wheel: ArmedWheel[Task]
    store: Store
    memory: MemoryStore | None
    writeback: WriteBack | None
    is_running: bool
    is_closing: bool
    failure: SchedulerCrashedError | None

    @abstractmethod
    def request_dispatch(self) -> None:
        """Start what may start now (``Engine.request_dispatch``)."""

    # -- configuration (before or while running) ------------------------------------

    def _use_store(self, store: Store) -> None:
        self.store = store
        self.memory = store if isinstance(store, MemoryStore) else None
        self.writeback = None if store.shares_objects else WriteBack(store)

    def use_store(self, store: Store) -> None:
        if self.is_running or self.is_closing:
            raise SchedulerStateError("the store can only be replaced before start()")
        self._use_store(store)

    def set_type_limit(self, task_type: str, limit: int) -> None:
        self.limits.type_limits[task_type] = limit

    def set_key_limit(self, key: str, limit: int) -> None:
        self.limits.key_limits[key] = limit
        if self.is_running:
            self.request_dispatch()

    def set_max_concurrency(self, limit: int) -> None:
        self.limits.total_limit = limit
        if self.is_running:
            self.request_dispatch()

    def gate_type(self, task_type: str) -> None:
        """Tasks of this type pass a rate limit or a circuit breaker before starting."""
        self.line.gated.add(task_type)

    def set_executor_available(self, names: tuple[str, ...], up: bool, reason: str) -> None:
        """Executors ``names`` went down (their due tasks then wait SCHEDULED, parked,
        with ``reason``) or came back (the parked tasks go back to the ready line)."""
        types = {d.name for d in self.registry.definitions.values() if d.executor in names}
        if self.line.hold_executors(names, types, None if up else reason) and self.is_running:
            self.request_dispatch()

    def attach(self, service: Service) -> None:
        self.services.append(service)

    # -- events ----------------------------------------------------------------------

    def subscribe(
        self, listener: Listener, states: Collection[TaskLifecycle] | None = None
    ) -> Callable[[], None]:
        """Hear task events (only those entering ``states``, if given) and, without
        ``states``, circuit breaker events; ``states=()`` hears the circuit breaker
        events alone.  Returns the unsubscribe function."""
        return self.hub.subscribe(listener, states)

    def on_settled(self, hook: Callable[[Task], None]) -> Callable[[], None]:
        """Call ``hook`` with every task that reaches a terminal state here."""
        return self.hub.on_settled(hook)

    # -- views ----------------------------------------------------------------------------

    @property
    def store_errors(self) -> int:
        return 0 if self.writeback is None else self.writeback.errors

    def tasks(self) -> Iterable[Task]:
        """The tasks this process holds (not finished)."""
        return self.active.values()

    def state_count(self, state: TaskLifecycle) -> int:
        return self.state_counts[state]

    def timers_pending(self) -> int:
        return len(self.wheel)

    def require_running(self) -> None:
        if self.failure is not None:
            raise self.failure
        if not self.is_running:
            state = "shutting down" if self.is_closing else "not started"
            raise SchedulerStateError(
                f"the scheduler is {state}; use 'async with scheduler:' or await start()"
            )
