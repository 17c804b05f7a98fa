"""The ready line: due tasks in start order, and the rules that decide which starts.

A due task waits here keyed on (priority, due time, sequence), or on the
levels a dynamic priority strategy and fair share give it.  ``drain`` pops
tasks and starts each that may: a task whose type or key limit is full is
parked until a slot frees; one held by a rate limit or an open circuit is
deferred (it spends no attempt).  A task it returns holds its slot.
"""

from __future__ import annotations

from collections.abc import Callable

from asched.clock import Clock, TimerHandle
from asched.core.limits import ConcurrencyLimits
from asched.core.queue import TaskQueue
from asched.engine.policies import Gate, Policies
from asched.model import Task, TaskPriority
from asched.strategies.priority import FairShare, PriorityStrategy

#: Called with a task a rate limit holds and the time to look at it again.
DeferUntil = Callable[[Task, float], None]


class ReadyLine:
    __slots__ = (
        "_clock",
        "_defer_until",
        "_fair",
        "_policies",
        "_ranker",
        "_rerank_timer",
        "executor_holds",
        "gated",
        "limits",
        "plain",
        "queue",
    )

    def __init__(
        self,
        limits: ConcurrencyLimits[str, Task],
        policies: Policies,
        ranker: PriorityStrategy | None,
        fair: FairShare | None,
        defer_until: DeferUntil,
    ) -> None:
        self.limits = limits
        self.queue: TaskQueue[str, Task] = TaskQueue()
        self.gated: set[str] = set()
        #: executor name -> why its due tasks wait (its broker is unreachable)
        self.executor_holds: dict[str, Gate] = {}
        self._policies = policies
        self._ranker = ranker
        self._fair = fair
        #: no ranker, no fair share: due tasks go in by (priority, due time)
        self.plain = ranker is None and fair is None
        self._clock: Clock | None = None
        self._defer_until = defer_until
        self._rerank_timer: TimerHandle | None = None

    def __len__(self) -> int:
        return len(self.queue)

    def bind(self, clock: Clock) -> None:
        self._clock = clock

    def push(self, task: Task, now_s: float) -> None:
        if self.plain:
            self.queue.push(task.id, task.priority, task.due_s, task)
            return
        ranker, fair = self._ranker, self._fair
        level = task.priority if ranker is None else ranker.rank(task, now_s)
        order = task.due_s if fair is None else fair.stamp(level, task.concurrency_key)
        self.queue.push(task.id, level, order, task)
        if ranker is not None and self._rerank_timer is None:
            every = ranker.rerank_every_s
            if every is not None and self._clock is not None:
                self._rerank_timer = self._clock.call_at(now_s + every, self._rerank)

    def push_all(self, tasks: list[Task], now_s: float) -> None:
        for task in tasks:
            self.push(task, now_s)

    def reprioritize(self, task_id: str, level: TaskPriority) -> None:
        self.queue.reprioritize(task_id, level)

    def remove(self, task: Task, now_s: float) -> bool:
        """Take a task that will not start (cancelled, paused) out of the line and out of
        any parking; True if that woke others that now wait for a dispatch."""
        self.queue.remove(task.id)
        limits = self.limits
        limits.unpark(task.id)
        woken = limits.forget(task.id)
        self.push_all(woken, now_s)
        return bool(woken)

    def drain(self, now_s: float, start: Callable[[Task, float], None]) -> None:
        """Hand ``start`` every task that may start now, best first, its slot taken.

        A task over a type or key limit is parked until a slot frees; one held by a
        rate limit or an open circuit is deferred.  Stops when the total limit is
        reached or the line is empty.
        """
        limits = self.limits
        queue = self.queue
        fair = self._fair
        check_limits = bool(limits.type_limits)
        gated = self.gated
        while limits.running < limits.total_limit:
            if fair is None:
                task = queue.pop()
                if task is None:
                    return
            else:
                popped = queue.pop_ordered()
                if popped is None:
                    return
                task, level, stamp = popped
                fair.dispatched(level, stamp)
            key = task.concurrency_key
            if check_limits or key is not None:
                blocker = limits.blocker(task.type, key)
                if blocker is not None:
                    parked = limits.park(blocker, task.id, task.priority, task.due_s, task)
                    self.push_all(parked, now_s)
                    continue
            if gated and task.type in gated:
                gate = self._gate(task, now_s)
                if gate is not None:
                    self._defer(task, gate, now_s)
                    continue
            if key is None and not check_limits:
                limits.running += 1
            else:
                limits.acquire(task.type, key, task.id)
            start(task, now_s)

    def release(self, task: Task) -> None:
        """An attempt ended (or never started): free its slot, wake who waited for it."""
        limits = self.limits
        if task.concurrency_key is None and not limits.type_limits:
            limits.running -= 1
            return
        woken = limits.release(task.type, task.concurrency_key)
        if woken:
            assert self._clock is not None
            self.push_all(woken, self._clock.now())

    def _gate(self, task: Task, now_s: float) -> Gate | None:
        if self.executor_holds:
            hold = self.executor_holds.get(task.executor_type)
            if hold is not None:
                return hold
        policies = self._policies
        return policies.gate(task, now_s) if policies.is_gated(task.type) else None

    def hold_executors(self, names: tuple[str, ...], types: set[str], reason: str | None) -> bool:
        """Hold the due tasks of ``types`` (run by executors ``names``) with ``reason``,
        or, with None, release them; True if released tasks wait for a dispatch."""
        blocker = f"executor:{names[0]}"
        if reason is not None:
            for name in names:
                self.executor_holds[name] = Gate(None, reason, blocker)
            self.gated.update(types)
            return False
        if not any(name in self.executor_holds for name in names):
            return False
        for name in names:
            self.executor_holds.pop(name, None)
        self.gated.difference_update(t for t in types if not self._policies.is_gated(t))
        woken = self.limits.unpark_all(("breaker", blocker))
        for task in woken:
            task.wait_reason = None
        self.push_all(woken, self._clock.now() if self._clock else 0.0)
        return bool(woken)

    def wake_breaker(self, name: str, now_s: float) -> bool:
        """A breaker changed or freed a trial: its parked tasks try again."""
        woken = self.limits.unpark_all(("breaker", name))
        self.push_all(woken, now_s)
        return bool(woken)

    def _defer(self, task: Task, gate: Gate, now_s: float) -> None:
        task.wait_reason = gate.reason
        limits = self.limits
        if gate.wake_at_s is not None:
            self._defer_until(task, gate.wake_at_s)
            woken = limits.forget(task.id)
        else:
            assert gate.breaker is not None
            woken = limits.park(("breaker", gate.breaker), task.id, task.priority, task.due_s, task)
        self.push_all(woken, now_s)

    def defer(self, task: Task, wake_s: float) -> None:
        """Hold a task (holding no slot) in the timer wheel until ``wake_s``."""
        self._defer_until(task, wake_s)

    def _rerank(self) -> None:
        """Let a dynamic priority strategy re-rank every waiting task (ageing)."""
        self._rerank_timer = None
        ranker, clock = self._ranker, self._clock
        if ranker is None or clock is None or not self.queue:
            return
        now = clock.now()
        for task in self.queue.unordered():
            self.queue.reprioritize(task.id, ranker.rank(task, now))
        if ranker.rerank_every_s is not None:
            self._rerank_timer = clock.call_at(now + ranker.rerank_every_s, self._rerank)
