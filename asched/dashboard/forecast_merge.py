"""Adds counted one-off tasks to a forecast of the schedules alone.

On a store the dashboard counts pending tasks per bucket inside the database
(:meth:`~asched.dashboard.queries.TaskReader.pending`) instead of loading them;
this folds those counts into :func:`asched.observability.forecast.build_forecast`'s
output for the recurring schedules, giving the same shape.  Pure.
"""

from __future__ import annotations

import heapq
from datetime import UTC, datetime
from typing import Any

from asched.dashboard.queries import BucketCount, PendingRun
from asched.model import TaskPriority


def _run_order(run: dict[str, Any]) -> tuple[Any, ...]:
    # The order build_forecast gives its runs: time, then priority, then id.
    return run["time"], TaskPriority[run["priority"]], run["id"]


def add_pending(
    forecast: dict[str, Any],
    counts: list[BucketCount],
    runs: list[PendingRun],
    origin_s: float,
    upcoming_limit: int,
) -> dict[str, Any]:
    bucket_s = forecast["bucket_s"]
    buckets = {b["start"]: b for b in forecast["buckets"]}
    for index, kind, priority, n in counts:
        start = datetime.fromtimestamp(origin_s + index * bucket_s, UTC)
        entry = buckets.get(start)
        if entry is None:
            entry = buckets[start] = {
                "start": start,
                "total": 0,
                "by_type": {},
                "by_priority": {},
                "expected_busy_s": 0.0,
            }
        entry["total"] += n
        entry["by_type"][kind] = entry["by_type"].get(kind, 0) + n
        entry["by_priority"][priority.name] = entry["by_priority"].get(priority.name, 0) + n
    now = forecast["generated_at"]
    one_offs = [
        {
            "time": max(now, datetime.fromtimestamp(run.due_s, UTC)),
            "id": run.id,
            "type": run.type,
            "priority": run.priority.name,
            "source": "one-off",
        }
        for run in runs
    ]
    upcoming = heapq.nsmallest(upcoming_limit, forecast["upcoming"] + one_offs, key=_run_order)
    return {
        **forecast,
        "total": forecast["total"] + sum(n for *_, n in counts),
        "buckets": [buckets[start] for start in sorted(buckets)],
        "upcoming": upcoming,
    }
