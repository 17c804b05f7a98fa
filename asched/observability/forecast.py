"""The execution forecast: what is expected to run, bucket by bucket.

Pure: it takes the pending tasks, the schedules and the measured mean duration
per task type, and returns plain data (see :func:`build_forecast`).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from itertools import repeat
from operator import attrgetter, floordiv, sub
from typing import Any, NamedTuple

from asched.engine.recurring import Schedule
from asched.model import Task, TaskLifecycle, TaskPriority

BUCKETS_S = {"minute": 60, "hour": 3600, "day": 86400}
_PENDING = frozenset({TaskLifecycle.QUEUED, TaskLifecycle.SCHEDULED, TaskLifecycle.RETRYING})
_PRIORITY_NAMES = {p: p.name for p in TaskPriority}
_DUE = attrgetter("due_s")
_KIND = attrgetter("type", "priority")


def build_forecast(
    now_s: float,
    lookahead_s: float,
    bucket_s: int,
    tasks: Iterable[Task],
    schedules: Iterable[Schedule],
    mean_duration_s: Mapping[str, float],
    *,
    task_type: str | None = None,
    upcoming_limit: int = 1000,
) -> dict[str, Any]:
    """Counts per bucket by type and priority, expected busy seconds per bucket,
    and the earliest ``upcoming_limit`` runs (time, id, type, priority, source)."""
    end_s = now_s + lookahead_s
    origin = int(now_s // bucket_s) * bucket_s
    pending = [
        t
        for t in tasks
        if t.due_s < end_s
        and t.lifecycle in _PENDING
        and (task_type is None or t.type == task_type)
    ]
    fires = _Fires.of(schedules, now_s, end_s, task_type)
    counts = _count(pending, fires, now_s, origin, bucket_s)
    upcoming = _upcoming(pending, fires, now_s, upcoming_limit)
    return {
        "generated_at": datetime.fromtimestamp(now_s, UTC),
        "lookahead_hours": lookahead_s / 3600,
        "bucket_s": bucket_s,
        "total": sum(counts.values()),
        "buckets": _buckets(counts, origin, bucket_s, mean_duration_s),
        "upcoming": [
            {
                "time": datetime.fromtimestamp(at, UTC),
                "id": task_id,
                "type": kind,
                "priority": _PRIORITY_NAMES[priority],
                "source": source,
            }
            for at, priority, task_id, kind, source in upcoming
        ],
    }


class _Fires(NamedTuple):
    """Recurring fires as parallel lists; the key tuples are shared, not copied."""

    times: list[float]
    keys: list[tuple[str, TaskPriority]]
    owners: list[Schedule]

    @classmethod
    def of(
        cls, schedules: Iterable[Schedule], now_s: float, end_s: float, task_type: str | None
    ) -> _Fires:
        fires = cls([], [], [])
        for schedule in schedules:
            if schedule.paused or schedule.next_fire_s is None:
                continue
            if task_type is not None and schedule.task_type != task_type:
                continue
            times = schedule.trigger.fires_between(now_s, end_s, 100_000)
            fires.times.extend(times)
            fires.keys.extend([(schedule.task_type, schedule.priority)] * len(times))
            fires.owners.extend([schedule] * len(times))
        return fires


def _count(
    pending: list[Task], fires: _Fires, now_s: float, origin: float, bucket_s: int
) -> Counter[tuple[int, str, TaskPriority]]:
    """(bucket index, type, priority) -> count, with C-level map/zip over every run,
    lazily (a million temporary tuples at once would wake the garbage collector).
    Overdue work counts in the first bucket."""
    first = (now_s - origin) // bucket_s
    counts: Counter[tuple[int, str, TaskPriority]] = Counter()
    for times, keys in ((map(_DUE, pending), map(_KIND, pending)), (fires.times, fires.keys)):
        indexes = map(floordiv, map(sub, times, repeat(origin)), repeat(bucket_s))
        for (index, (kind, priority)), n in Counter(zip(indexes, keys, strict=True)).items():
            counts[(int(max(index, first)), kind, priority)] += n
    return counts


def _upcoming(
    pending: list[Task], fires: _Fires, now_s: float, limit: int
) -> list[tuple[float, TaskPriority, str, str, str]]:
    """The earliest runs; ids and sources are spelled out only for these."""
    runs: list[tuple[float, TaskPriority, str, str, str]] = [
        (max(t.due_s, now_s), t.priority, t.id, t.type, "one-off")
        for t in heapq.nsmallest(limit, pending, key=_DUE)
    ]
    times = fires.times
    for i in heapq.nsmallest(limit, range(len(times)), key=times.__getitem__):
        owner, at = fires.owners[i], times[i]
        runs.append(
            (at, owner.priority, owner.task_id_for(at), owner.task_type, f"schedule:{owner.id}")
        )
    return heapq.nsmallest(limit, runs)


def _buckets(
    counts: Counter[tuple[int, str, TaskPriority]],
    origin: int,
    bucket_s: int,
    mean_duration_s: Mapping[str, float],
) -> list[dict[str, Any]]:
    grouped: dict[int, dict[str, Any]] = {}
    for (index, kind, priority), n in counts.items():
        entry = grouped.setdefault(
            index, {"total": 0, "by_type": Counter(), "by_priority": Counter(), "busy_s": 0.0}
        )
        entry["total"] += n
        entry["by_type"][kind] += n
        entry["by_priority"][_PRIORITY_NAMES[priority]] += n
        entry["busy_s"] += n * mean_duration_s.get(kind, 0.0)
    return [
        {
            "start": datetime.fromtimestamp(origin + index * bucket_s, UTC),
            "total": entry["total"],
            "by_type": dict(entry["by_type"]),
            "by_priority": dict(entry["by_priority"]),
            "expected_busy_s": entry["busy_s"],
        }
        for index, entry in sorted(grouped.items())
    ]


def render_timeline(forecast: Mapping[str, Any], width: int = 40) -> str:
    """A text bar chart, one line per bucket."""
    buckets = forecast["buckets"]
    if not buckets:
        return "nothing expected to run in the window"
    peak = max(b["total"] for b in buckets) or 1
    fmt = "%Y-%m-%d %H:%M" if forecast["bucket_s"] < 86400 else "%Y-%m-%d"
    lines = []
    for bucket in buckets:
        bar = "#" * max(1, round(bucket["total"] / peak * width))
        busy = bucket["expected_busy_s"]
        load = f"  ~{busy:.0f}s busy" if busy else ""
        types = ", ".join(f"{k}:{v}" for k, v in sorted(bucket["by_type"].items()))
        lines.append(
            f"{bucket['start'].strftime(fmt)}  {bar:<{width}} {bucket['total']:>6}{load}  {types}"
        )
    return "\n".join(lines)
