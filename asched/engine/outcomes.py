"""How attempts end: a result, a failure (retried after a backoff, or final), an
attempt abandoned, interrupted by shutdown, or lost with its lease.  The engine's
:class:`~asched.engine.attempts.Attempts` reports each end here; this turns it
into the engine's moves, and feeds the task's circuit breaker."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from asched.engine.hub import emit
from asched.engine.policies import OUTCOME_ABANDONED, OUTCOME_FAILED, OUTCOME_SUCCEEDED
from asched.events import EVENT_FOR_BREAKER_STATE
from asched.model import Task
from asched.model.states import COMPLETED, FAILED, QUEUED, RETRYING
from asched.stores.base import result_problem

if TYPE_CHECKING:
    from asched.engine.loop import Engine

logger = logging.getLogger("asched.engine.loop")


class Outcomes:
    """The engine's :class:`~asched.engine.attempts.AttemptSink`."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def attempt_succeeded(self, task: Task, result: Any) -> None:
        engine = self._engine
        now = engine.clock.now()
        if result is not None:
            problem = result_problem(result, engine.store.max_payload_bytes)
            if problem is not None:
                self.report(task, OUTCOME_FAILED, now)
                self.fail(task, problem, now, None, retry=False)
                return
        if engine.line.gated:
            self.report(task, OUTCOME_SUCCEEDED, now)
        engine.release(task)
        task.result = result
        task.finished_s = now
        engine.move(task, COMPLETED, now, None)
        if engine.middleware.after_run:
            engine.middleware.run_after_run(task, COMPLETED)
        if engine.hub.settled or engine.waiters or engine.deps.has_dependents:
            engine.settle(task)
        else:  # Engine.settle's common case, inline: nobody to tell
            engine.active.pop(task.id, None)

    def attempt_failed(self, task: Task, error: str, exc: BaseException) -> None:
        engine = self._engine
        now = engine.clock.now()
        self.report(task, OUTCOME_FAILED, now)
        self.fail(task, error, now, exc, retry=True)

    def attempt_abandoned(self, task: Task) -> None:
        """The attempt ended after the task was settled (cancelled while running)."""
        engine = self._engine
        self.report(task, OUTCOME_ABANDONED, engine.clock.now())
        engine.release(task)

    def attempt_interrupted(self, task: Task) -> None:
        """Shutdown cancelled the attempt: hand the task back, no attempt spent."""
        engine = self._engine
        now = engine.clock.now()
        self.report(task, OUTCOME_ABANDONED, now)
        engine.release(task)
        engine.move(task, QUEUED, now, "interrupted by shutdown; handed back")

    def attempt_lost(self, task: Task) -> None:
        engine = self._engine
        self.report(task, OUTCOME_ABANDONED, engine.clock.now())
        engine.release(task)
        engine.forget(task)

    def report(self, task: Task, outcome: str, now_s: float) -> None:
        """Feed a gated task's breaker; announce its changes; wake tasks waiting on it."""
        engine = self._engine
        if task.type not in engine.line.gated:
            return
        shared = engine.shared_coordinator
        if shared is not None:  # the store keeps the breakers (asched.engine.cluster_rules)
            shared.rules.outcome(task, outcome, now_s)
        name, changes = engine.policies.report(task, outcome, now_s)
        if name is None:
            return
        listeners = engine.hub.all
        for change in changes if listeners else ():
            event = EVENT_FOR_BREAKER_STATE[change.to_state]
            emit(
                listeners,
                event(change.name, change.from_state, change.to_state, change.at, change.reason),
            )
        if engine.line.wake_breaker(name, now_s):
            engine.request_dispatch()

    def fail(
        self, task: Task, error: str, now_s: float, exc: BaseException | None, *, retry: bool
    ) -> None:
        engine = self._engine
        engine.release(task)
        task.error = error
        max_s = engine.config.max_backoff_s
        delay = engine.policies.retry_delay(task, exc, max_s) if retry else None
        if delay is not None:
            task.retries += 1
            reason = f"attempt {task.retries} failed: {error}; retrying in {delay:g}s"
            logger.info("task %s (%s): %s", task.id, task.type, reason)
            engine.move(task, RETRYING, now_s, reason)  # its event names the attempt's due time
            task.due_s = now_s + delay
            if engine.middleware.after_run:
                engine.middleware.run_after_run(task, RETRYING)
            engine.place(task, now_s)
            return
        task.finished_s = now_s
        logger.warning("task %s (%s) failed: %s", task.id, task.type, error)
        engine.move(task, FAILED, now_s, error)
        if engine.middleware.after_run:
            engine.middleware.run_after_run(task, FAILED)
        engine.settle(task)
