"""Dynamic priority: how a due task is ranked in the ready queue.

A :class:`PriorityStrategy` maps a due task to the priority it competes with
(lower runs first) and says how often waiting tasks should be ranked again.
:class:`Ageing` is the built-in one: every ``threshold_s`` a task waits past
its due time lifts it one level, never above ``ceiling``, so BACKGROUND work
cannot starve behind a steady stream of higher-priority tasks.

:class:`FairShare` orders tasks *within* one priority level by a per-flow
virtual time (start-time fair queuing): each ``concurrency_key`` (a channel,
say) is a flow, and a flow's next task is stamped one step (``1 / weight``)
after its previous one, or after the current virtual time if the flow was
idle.  Ten thousand queued tasks of one channel therefore cannot delay
another channel's single task by more than a few dispatches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from asched.core.checks import require_number
from asched.errors import ConfigError
from asched.model import Task, TaskPriority


class PriorityStrategy(Protocol):
    """Ranks due tasks; the hook for a user's own decision engine."""

    #: re-rank every waiting task this often (seconds); None: rank once, on entry
    rerank_every_s: float | None

    def rank(self, task: Task, now_s: float) -> int:
        """The priority ``task`` competes with now (lower runs first)."""
        ...


class Ageing:
    """Lift a waiting task one level per ``threshold_s`` past its due time, up to ``ceiling``."""

    __slots__ = ("ceiling", "rerank_every_s", "threshold_s")

    def __init__(
        self, threshold_s: float = 300.0, ceiling: TaskPriority = TaskPriority.HIGH
    ) -> None:
        require_number("threshold_s", threshold_s, above=0, unit="seconds", error=ConfigError)
        if not isinstance(ceiling, TaskPriority):
            raise ConfigError("ceiling", ceiling, "expected a TaskPriority")
        self.threshold_s = float(threshold_s)
        self.ceiling = ceiling
        self.rerank_every_s: float | None = self.threshold_s / 4

    def rank(self, task: Task, now_s: float) -> int:
        base = int(task.priority)
        if base <= self.ceiling:
            return base
        waited = now_s - task.due_s
        if waited < self.threshold_s:
            return base
        return max(int(self.ceiling), base - int(waited // self.threshold_s))


class FairShare:
    """Round-robin (or weighted) service across concurrency keys within a priority."""

    __slots__ = ("_clock", "_last", "weights")

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        weights = dict(weights or {})
        for key, weight in weights.items():
            require_number(f"weights[{key!r}]", weight, above=0, error=ConfigError)
        self.weights = weights
        # Per priority level: the virtual time of the last dispatched task, and
        # each flow's last stamp.
        self._clock: dict[int, float] = {}
        self._last: dict[tuple[int, str | None], float] = {}

    def stamp(self, priority: int, flow: str | None) -> float:
        """The virtual start time of a flow's next task at ``priority``."""
        step = 1.0 / self.weights.get(flow, 1.0) if flow is not None else 1.0
        start = max(self._clock.get(priority, 0.0), self._last.get((priority, flow), 0.0))
        stamp = start + step
        self._last[(priority, flow)] = stamp
        return stamp

    def dispatched(self, priority: int, stamp: float) -> None:
        """Advance the level's virtual time as its tasks start."""
        if stamp > self._clock.get(priority, 0.0):
            self._clock[priority] = stamp
            if len(self._last) > 4096:
                self._forget_idle(priority, stamp)

    def _forget_idle(self, priority: int, now_v: float) -> None:
        # A flow whose last stamp is behind the level's clock is idle: forgetting
        # it changes nothing, since max() would pick the clock anyway.
        stale = [k for k, v in self._last.items() if k[0] == priority and v <= now_v]
        for key in stale:
            del self._last[key]
