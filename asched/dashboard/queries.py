"""What the dashboard asks of a store: a filtered page of tasks, and counts.

:class:`TaskQuery` is parsed from a request's query string and always names a
bounded page (at most :data:`MAX_PAGE` tasks), so no request can pull a whole
store.  :class:`GenericReader` answers with the Store contract alone and works
on every store; the SQLite reader (:mod:`asched.dashboard.sqlite_reader`)
answers the same questions from indexes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asched.errors import TaskValidationError
from asched.model import TERMINAL_STATES, Task, TaskLifecycle, TaskPriority
from asched.stores.base import Store

DEFAULT_PAGE = 50
MAX_PAGE = 100
#: The generic reader filters by key and tag in Python, over at most this many
#: tasks in due order; the page says when the window was cut.
GENERIC_SCAN_CAP = 5000
ORDERS = ("newest", "due", "due_desc")
PENDING_STATES = (TaskLifecycle.QUEUED, TaskLifecycle.SCHEDULED, TaskLifecycle.RETRYING)


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """One page of tasks: filters, then ``offset``/``limit`` in ``order``: ``newest``
    (most recently created first), ``due`` or ``due_desc``."""

    state: TaskLifecycle | None = None
    task_type: str | None = None
    key: str | None = None
    tag: str | None = None
    offset: int = 0
    limit: int = DEFAULT_PAGE
    order: str = "due"

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> TaskQuery:
        """Read ``state``, ``type``, ``key``, ``tag``, ``offset``, ``limit``, ``order``;
        ``limit`` is clamped to :data:`MAX_PAGE`.  The default order is the one an
        index serves: newest first, or by due time within one state (latest first
        for a finished state)."""
        state = _state(params.get("state"))
        order = params.get("order") or _default_order(state)
        if order not in ORDERS:
            raise TaskValidationError("order", order, f"one of {', '.join(ORDERS)}")
        return cls(
            state=state,
            task_type=params.get("type") or None,
            key=params.get("key") or None,
            tag=params.get("tag") or None,
            offset=_int(params, "offset", 0, 0, 10_000_000),
            limit=min(_int(params, "limit", DEFAULT_PAGE, 1, 1_000_000), MAX_PAGE),
            order=order,
        )

    def matches(self, task: Task) -> bool:
        if self.state is not None and task.lifecycle is not self.state:
            return False
        if self.task_type is not None and task.type != self.task_type:
            return False
        if self.key is not None and task.concurrency_key != self.key:
            return False
        return self.tag is None or self.tag in task.metadata.tags


@dataclass(slots=True)
class Page:
    tasks: list[Task]
    has_more: bool
    #: True when the generic reader stopped scanning before the end of the store.
    scan_capped: bool = False


@dataclass(slots=True)
class Counts:
    """Tasks by state (all), by type (all) and by priority (unfinished only)."""

    by_state: dict[str, int] = field(default_factory=dict)
    by_type: dict[str, int] = field(default_factory=dict)
    by_priority: dict[str, int] = field(default_factory=dict)
    #: Pending tasks already due (waiting for a worker) and not yet due.
    due_now: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "by_state": self.by_state,
            "by_type": self.by_type,
            "by_priority": self.by_priority,
            "due_now": self.due_now,
            "total": sum(self.by_state.values()),
        }


@dataclass(frozen=True, slots=True)
class PendingRun:
    """One upcoming one-off run."""

    due_s: float
    priority: TaskPriority
    id: str
    type: str


#: (bucket index from the origin, task type, priority, how many)
BucketCount = tuple[int, str, TaskPriority, int]


@dataclass(frozen=True, slots=True)
class ForecastQuery:
    """Pending one-off tasks due before ``until_s``, counted per bucket of ``bucket_s``
    from ``origin_s`` (overdue ones in bucket 0), and the first ``upcoming`` of them."""

    origin_s: float
    bucket_s: int
    until_s: float
    task_type: str | None
    upcoming: int


class TaskReader(ABC):
    """Reads for the dashboard; the base class needs only the Store contract."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire what the reader needs beyond the store (the store is opened by its owner)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release it."""

    @abstractmethod
    async def page(self, query: TaskQuery) -> Page:
        """One page of tasks."""

    @abstractmethod
    async def counts(self, now_s: float) -> Counts:
        """Counts by state, priority and type."""

    async def state_counts(self, now_s: float) -> Counts:
        """Only ``by_state`` and ``due_now`` (what the load metrics need)."""
        return await self.counts(now_s)

    @abstractmethod
    async def pending(self, query: ForecastQuery) -> tuple[list[BucketCount], list[PendingRun]]:
        """Pending work per bucket, and the earliest runs."""

    async def lease_owners(self, now_s: float) -> list[dict[str, Any]]:
        """Owners holding valid leases (workers sharing the store), when the store can tell."""
        return []


class GenericReader(TaskReader):
    """Every store: pages through ``list_tasks``; counts read every task (cheap for
    the in-process memory store, the only other store today)."""

    async def page(self, query: TaskQuery) -> Page:
        needed = query.offset + query.limit + 1
        simple = query.key is None and query.tag is None and query.order == "due"
        window = needed if simple else GENERIC_SCAN_CAP
        found = await self.store.list_tasks(query.state, query.task_type, window)
        capped = not simple and len(found) >= window
        if query.order == "due_desc":
            found.reverse()
        elif query.order == "newest":
            found.sort(key=lambda t: t.created_s, reverse=True)
        matching = [t for t in found if query.matches(t)]
        chosen = matching[query.offset : query.offset + query.limit]
        return Page(chosen, len(matching) > query.offset + query.limit, capped)

    async def counts(self, now_s: float) -> Counts:
        by_state = await self.store.count_by_state()
        every = await self.store.list_tasks()
        unfinished = [t for t in every if not t.is_terminal]
        counts = Counts(by_state={s.name: n for s, n in sorted(by_state.items()) if n})
        counts.by_priority = _names(Counter(t.priority.name for t in unfinished))
        counts.by_type = _names(Counter(t.type for t in every))
        counts.due_now = sum(
            1 for t in unfinished if t.lifecycle in PENDING_STATES and t.due_s <= now_s
        )
        return counts

    async def pending(self, query: ForecastQuery) -> tuple[list[BucketCount], list[PendingRun]]:
        found = [
            t
            for t in await self.store.load_unfinished()
            if t.lifecycle in PENDING_STATES
            and t.due_s < query.until_s
            and (query.task_type is None or t.type == query.task_type)
        ]
        counts: Counter[tuple[int, str, TaskPriority]] = Counter(
            (max(0, int((t.due_s - query.origin_s) // query.bucket_s)), t.type, t.priority)
            for t in found
        )
        found.sort(key=lambda t: (t.due_s, t.priority, t.id))
        runs = [PendingRun(t.due_s, t.priority, t.id, t.type) for t in found[: query.upcoming]]
        return [(i, kind, p, n) for (i, kind, p), n in counts.items()], runs


def _default_order(state: TaskLifecycle | None) -> str:
    if state is None:
        return "newest"
    return "due_desc" if state in TERMINAL_STATES else "due"


def _names(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items()))


def _state(raw: str | None) -> TaskLifecycle | None:
    if not raw:
        return None
    state = TaskLifecycle.__members__.get(raw.upper())
    if state is None:
        names = ", ".join(TaskLifecycle.__members__)
        raise TaskValidationError("state", raw, f"one of {names}")
    return state


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise TaskValidationError(name, raw, "expected an integer") from None
    if not low <= value <= high:
        raise TaskValidationError(name, raw, f"must be between {low} and {high}")
    return value
