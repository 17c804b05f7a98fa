"""Slot choice: pick when to run a task inside a window.

The default spreads load: it picks the candidate time whose forecast bucket
holds the fewest tasks (earliest on ties).  A :data:`SlotScorer` — for example
engagement by hour of day per channel, supplied by the user's analytics —
ranks candidates instead, and the forecast load breaks near-ties, so the
busiest buckets are avoided when the scores allow it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: ``scorer(candidate, task_type, task_data) -> score``; higher is better.
SlotScorer = Callable[[datetime, str, Mapping[str, Any]], float]

MAX_CANDIDATES = 500
#: how much a full bucket (relative to the busiest in the window) costs in score units
LOAD_WEIGHT = 0.25


@dataclass(frozen=True, slots=True)
class SlotChoice:
    at_s: float
    reason: str


def choose_slot(
    start_s: float,
    end_s: float,
    load_by_bucket: Mapping[int, int],
    bucket_s: int,
    *,
    step_s: float = 300.0,
    scorer: SlotScorer | None = None,
    task_type: str = "",
    task_data: Mapping[str, Any] | None = None,
) -> SlotChoice:
    """Choose a time in ``[start_s, end_s]``; ``load_by_bucket`` maps
    ``int(t // bucket_s)`` to the number of tasks expected in that bucket."""
    span = end_s - start_s
    step = max(step_s, span / MAX_CANDIDATES) if span > 0 else 1.0
    count = int(span // step) + 1 if span > 0 else 1
    candidates = [start_s + i * step for i in range(count)]
    busiest = max(load_by_bucket.values(), default=0) or 1
    data = task_data or {}
    best: tuple[float, float, float] | None = None  # (value, -time, score)
    for at in candidates:
        load = load_by_bucket.get(int(at // bucket_s), 0)
        score = scorer(datetime.fromtimestamp(at, UTC), task_type, data) if scorer else 0.0
        value = score - LOAD_WEIGHT * load / busiest
        key = (value, -at, score)
        if best is None or key > best:
            best = key
    assert best is not None
    at = -best[1]
    load = load_by_bucket.get(int(at // bucket_s), 0)
    when = datetime.fromtimestamp(at, UTC).isoformat()
    if scorer is None:
        reason = f"least busy slot in the window: {when} ({load} tasks in its bucket)"
    else:
        name = getattr(scorer, "__name__", type(scorer).__name__)
        reason = f"best slot by {name}: {when} (score {best[2]:.3g}, {load} tasks in its bucket)"
    return SlotChoice(at, reason)
