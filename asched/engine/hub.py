"""Who hears what: event listeners by the state a task enters, and settled hooks.

Events are only built for states someone listens to, so a subscriber that
wants outcomes (COMPLETED, FAILED, RETRYING) costs nothing on the other
transitions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Protocol

from asched.events import EVENT_FOR_STATE, Event
from asched.model import Task, TaskLifecycle

logger = logging.getLogger(__name__)

Listener = Callable[[Event], None]


class Service(Protocol):
    """A collaborator the engine starts after recovery and stops before draining."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class EventHub:
    __slots__ = ("all", "by_state", "settled")

    def __init__(self) -> None:
        #: index = TaskLifecycle value: who hears about tasks entering that state
        self.by_state: list[list[Listener]] = [[] for _ in range(len(TaskLifecycle) + 1)]
        #: who hears every event, circuit breaker changes included
        self.all: list[Listener] = []
        self.settled: list[Callable[[Task], None]] = []

    def subscribe(
        self, listener: Listener, states: Collection[TaskLifecycle] | None = None
    ) -> Callable[[], None]:
        chosen = list(TaskLifecycle) if states is None else list(states)
        for state in chosen:
            self.by_state[state].append(listener)
        # Without states, or with none at all (``states=()``), circuit breaker events.
        if states is None or not chosen:
            self.all.append(listener)

        def unsubscribe() -> None:
            for state in chosen:
                if listener in self.by_state[state]:
                    self.by_state[state].remove(listener)
            if listener in self.all:
                self.all.remove(listener)

        return unsubscribe

    def on_settled(self, hook: Callable[[Task], None]) -> Callable[[], None]:
        self.settled.append(hook)
        return lambda: self.settled.remove(hook)


def emit(listeners: list[Listener], event: Event) -> None:
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            logger.exception("event listener %r failed on %r", listener, event)


# Events are named tuples; building one straight from a tuple skips the keyword
# handling of the generated constructor (a third of the cost on every transition).
new_event = tuple.__new__


def announce(
    hears: list[Listener],
    task: Task,
    now_s: float,
    previous: TaskLifecycle,
    target: TaskLifecycle,
    reason: str | None,
) -> None:
    """Tell ``hears`` that ``task`` moved from ``previous`` to ``target``."""
    fields = (
        task.id,
        task.type,
        task.priority,
        now_s,
        previous,
        target,
        reason,
        task.started_s,
        task.due_s,
    )
    emit(hears, new_event(EVENT_FOR_STATE[target], fields))
