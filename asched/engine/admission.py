"""Accepting new tasks: validate, de-duplicate, check dependencies, then submit.

Nothing is stored until every check has passed, so a bad argument changes
nothing.  A batch (``schedule_many``) is all or nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Coroutine, Iterable, Mapping
from datetime import datetime
from typing import Any

from asched.core.dependencies import find_cycle
from asched.engine.intake import SPEC_FIELDS, TaskIntake, refuse_unknown_options
from asched.engine.loop import DependencyPlan, Engine
from asched.errors import AschedError, DependencyError, TaskValidationError
from asched.model import Task, TaskPriority
from asched.model.states import COMPLETED

#: A task whose insert is queued, and the insert to await.
Storing = tuple[Task, Awaitable[None]]


class Admission:
    __slots__ = ("_engine", "_intake")

    def __init__(self, engine: Engine, intake: TaskIntake) -> None:
        self._engine = engine
        self._intake = intake

    def schedule(
        self,
        task_type: str,
        task_data: Mapping[str, Any] | None,
        execution_time: datetime | None,
        priority: TaskPriority | int | str,
        options: dict[str, Any],
        audit: dict[str, Any] | None = None,
    ) -> str | Storing | Coroutine[Any, Any, str]:
        """Accept one task.  Without an idempotency key or dependencies: on the
        memory store its id at once; on a durable one the task and its insert to
        await, then to pass to ``Engine.stored`` (no coroutine per task on the
        common paths).  Else a coroutine that finishes admitting it, returning the id."""
        engine = self._engine
        now = engine.clock.now()
        try:
            task = self._intake.build(
                now, task_type, task_data, execution_time, priority, **options
            )
        except TypeError as exc:
            if not isinstance(exc, AschedError):
                refuse_unknown_options(options)
            raise
        if engine.middleware.before_schedule:
            engine.middleware.run_before_schedule(task)
        if audit is not None:
            task.metadata.audit_trail.append(audit)
        if task.idempotency_key is None and not task.dependencies:
            if engine.memory is None:
                return task, engine.store_lone(task, now)
            engine.submit_now(task, now, None)
            return task.id
        return self._admit(task, now)

    async def _admit(self, task: Task, now: float) -> str:
        """The rest of :meth:`schedule`: de-duplicate, check dependencies, submit."""
        engine = self._engine
        key = task.idempotency_key
        store = engine.store
        if key is not None:
            existing = await store.find_by_idempotency_key(key)
            if existing is not None:
                return existing
        plan: DependencyPlan | None = None
        if task.dependencies:
            if task.id in task.dependencies:
                raise DependencyError("dependencies", task.id, "a task cannot depend on itself")
            plan = await self._plan(task, {task.id})
        try:
            await engine.submit_one(task, now, plan)
        except TaskValidationError as exc:
            # A concurrent call with the same key won the race: return its task.
            if key is not None and exc.field == "idempotency_key":
                winner = await store.find_by_idempotency_key(key)
                if winner is not None:
                    return winner
            raise
        return task.id

    async def schedule_many(self, specs: Iterable[Mapping[str, Any]]) -> list[str]:
        engine = self._engine
        now = engine.clock.now()
        tasks = [self._build_spec(now, index, spec) for index, spec in enumerate(specs)]
        if engine.middleware.before_schedule:
            for task in tasks:
                engine.middleware.run_before_schedule(task)
        ids = {t.id for t in tasks}
        if len(ids) != len(tasks):
            twice = next(i for i, n in Counter(t.id for t in tasks).items() if n > 1)
            raise TaskValidationError("task_id", twice, "used twice in one batch")
        for t in tasks:
            key = t.idempotency_key
            if key is not None and await engine.store.find_by_idempotency_key(key) is not None:
                raise TaskValidationError("idempotency_key", key, "already used")
        plans: list[DependencyPlan] | None = None
        if any(t.dependencies for t in tasks):
            plans = [await self._plan(t, ids) for t in tasks]
            cycle = find_cycle({t.id: [d for d in t.dependencies if d in ids] for t in tasks})
            if cycle:
                raise DependencyError("dependencies", " -> ".join(cycle), "dependency cycle")
        await engine.submit(tasks, now, plans)
        return [t.id for t in tasks]

    def _build_spec(self, now_s: float, index: int, spec: Any) -> Task:
        if not isinstance(spec, Mapping):
            raise TaskValidationError(f"specs[{index}]", spec, "expected a mapping")
        if not SPEC_FIELDS.issuperset(spec):
            refuse_unknown_options(spec, f"specs[{index}].")
        if "task_type" not in spec:
            raise TaskValidationError(f"specs[{index}].task_type", None, "missing")
        return self._intake.build(now_s, **spec)

    async def _plan(self, task: Task, batch: set[str]) -> DependencyPlan:
        """The dependencies still to wait for, and the first that ended otherwise."""
        unmet: list[str] = []
        failed: str | None = None
        for dep_id in task.dependencies:
            if dep_id in batch or self._engine.holds(dep_id):
                unmet.append(dep_id)
                continue
            dep = await self._engine.store.get(dep_id)
            if dep is None:
                raise DependencyError("dependencies", dep_id, "no task with this id")
            if dep.lifecycle is not COMPLETED:
                failed = failed or dep_id
        return unmet, failed
