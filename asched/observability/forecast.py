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
from typing import Any

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
    # Recurring fires as parallel lists; the key tuples are shared, not copied.
    fire_times: list[float] = []
    fire_keys: list[tuple[str, TaskPriority]] = []
    fire_owners: list[Schedule] = []
    for schedule in schedules:
        if schedule.paused or schedule.next_fire_s is None:
            continue
        if task_type is not None and schedule.task_type != task_type:
            continue
        fires = schedule.trigger.fires_between(now_s, end_s, 100_000)
        fire_times += fires
        fire_keys += [(schedule.task_type, schedule.priority)] * len(fires)
        fire_owners += [schedule] * len(fires)
    # (bucket index, type, priority) -> count, with C-level map/zip over every run,
    # lazily (a million temporary tuples at once would wake the garbage collector).
    # Overdue work counts in the first bucket.
    first = (now_s - origin) // bucket_s
    counts: Counter[tuple[int, str, TaskPriority]] = Counter()
    for times, keys in ((map(_DUE, pending), map(_KIND, pending)), (fire_times, fire_keys)):
        indexes = map(floordiv, map(sub, times, repeat(origin)), repeat(bucket_s))
        for (index, (kind, priority)), n in Counter(zip(indexes, keys, strict=True)).items():
            counts[(int(max(index, first)), kind, priority)] += n
    # Ids and sources are spelled out only for the earliest runs.
    runs: list[tuple[float, TaskPriority, str, str, str]] = [
        (max(t.due_s, now_s), t.priority, t.id, t.type, "one-off")
        for t in heapq.nsmallest(upcoming_limit, pending, key=_DUE)
    ]
    for i in heapq.nsmallest(upcoming_limit, range(len(fire_times)), key=fire_times.__getitem__):
        owner, at = fire_owners[i], fire_times[i]
        source = f"schedule:{owner.id}"
        runs.append((at, owner.priority, owner.task_id_for(at), owner.task_type, source))
    upcoming = heapq.nsmallest(upcoming_limit, runs)
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
