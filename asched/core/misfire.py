"""Misfire planning: which fires of a recurring schedule to run now, after a delay.

The engine asks this whenever a schedule is due — on time or after a sleep, a
crash or an overload — with plain epoch seconds; nothing here reads a clock::

    plan = plan_misfires(trigger, last_fire_epoch=schedule.settled_until, now_epoch=now)
    for scheduled_epoch in plan.run_now:       # oldest first
        enqueue(schedule, scheduled_epoch)
    schedule.settled_until = max(now, schedule.settled_until)  # every fire up to now is dealt with
    arm(schedule, plan.next_fire)              # None: the trigger is exhausted

Record ``now`` (not only the last run) as settled, or fires skipped as late
would be counted again by the next plan.

Rules, for the fires ``t`` of the trigger with ``last_fire_epoch < t <= now``:

* ``t`` is **late** when ``now - t > grace_s`` and is skipped. The default grace,
  :data:`DEFAULT_MISFIRE_GRACE_S`, is a generous hour: a process that wakes up a
  little late must never drop a run silently. ``grace_s=None`` means no limit.
* Of the on-time fires, ``coalesce=True`` (the default) runs only the newest
  once; ``coalesce=False`` runs each of them, but at most ``max_catch_up`` (the
  newest), so a long outage cannot flood the queue.
* ``next_fire`` is the first fire strictly after ``now`` (and after
  ``last_fire_epoch``, should the clock have gone backwards).

Work is bounded: at most ``max_scan`` late fires are counted one by one, and at
most ``max_scan`` on-time fires are walked; past that the newest on-time fires
are found by bisection and ``counts_exact`` is ``False`` (the skip counts are
then lower bounds). A per-second schedule after a week of downtime costs
milliseconds, not a minute.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from asched.core.checks import require_int, require_number
from asched.core.triggers import Trigger
from asched.errors import TaskValidationError

__all__ = [
    "DEFAULT_MAX_CATCH_UP",
    "DEFAULT_MAX_SCAN",
    "DEFAULT_MISFIRE_GRACE_S",
    "MisfirePlan",
    "plan_misfires",
]

DEFAULT_MISFIRE_GRACE_S = 3600.0
DEFAULT_MAX_CATCH_UP = 100
DEFAULT_MAX_SCAN = 10_000


@dataclass(frozen=True, slots=True)
class MisfirePlan:
    """What to do with a schedule's due fires; see the module docstring for the rules."""

    run_now: tuple[float, ...]  # scheduled fire times to run now, oldest first
    skipped_late: int  # due fires older than the grace period
    skipped_coalesced: int  # on-time fires folded into the single coalesced run
    skipped_over_cap: int  # on-time fires beyond max_catch_up (the oldest ones)
    next_fire: float | None  # first fire after now; None when the trigger is exhausted
    counts_exact: bool = True  # False: the skip counts are lower bounds

    @property
    def skipped(self) -> int:
        """Every due fire that will not run."""
        return self.skipped_late + self.skipped_coalesced + self.skipped_over_cap


def plan_misfires(
    trigger: Trigger,
    *,
    last_fire_epoch: float,
    now_epoch: float,
    grace_s: float | None = DEFAULT_MISFIRE_GRACE_S,
    coalesce: bool = True,
    max_catch_up: int = DEFAULT_MAX_CATCH_UP,
    max_scan: int = DEFAULT_MAX_SCAN,
) -> MisfirePlan:
    """Plan the fires of ``trigger`` due in ``(last_fire_epoch, now_epoch]``.

    ``last_fire_epoch`` is the moment up to which fires are already dealt with:
    the ``now`` of the previous plan, or the scheduled time of the last fire
    recorded, or for a new schedule its creation time (any moment before its
    first fire).
    """
    _check_epoch("last_fire_epoch", last_fire_epoch)
    _check_epoch("now_epoch", now_epoch)
    if grace_s is not None:
        _check_epoch("grace_s", grace_s)
        if grace_s < 0:
            raise TaskValidationError("grace_s", grace_s, "must be >= 0 or None (no limit)")
    _check_count("max_catch_up", max_catch_up)
    _check_count("max_scan", max_scan)

    late_before = -math.inf if grace_s is None else now_epoch - grace_s
    late, first_on_time, late_exact = _count_late(
        trigger, last_fire_epoch, min(late_before, now_epoch), max_scan
    )
    keep = 1 if coalesce else max_catch_up
    kept, on_time, on_time_exact = _walk_on_time(trigger, first_on_time, now_epoch, keep, max_scan)
    dropped = on_time - len(kept)
    return MisfirePlan(
        run_now=tuple(kept),
        skipped_late=late,
        skipped_coalesced=dropped if coalesce else 0,
        skipped_over_cap=0 if coalesce else dropped,
        next_fire=trigger.next_fire(max(now_epoch, last_fire_epoch)),
        counts_exact=late_exact and on_time_exact,
    )


def _count_late(
    trigger: Trigger, after: float, late_before: float, budget: int
) -> tuple[int, float | None, bool]:
    """Count fires in ``(after, late_before)``; return the count, the first fire not
    counted and whether the count is exact."""
    late = 0
    fire = trigger.next_fire(after)
    while fire is not None and fire < late_before:
        if late == budget:
            # Too many to count: skip straight to the first fire at or after the cut-off.
            return late, trigger.next_fire(math.nextafter(late_before, -math.inf)), False
        late += 1
        fire = trigger.next_fire(fire)
    return late, fire, True


def _walk_on_time(
    trigger: Trigger, fire: float | None, now: float, keep: int, budget: int
) -> tuple[list[float], int, bool]:
    """From ``fire`` up to ``now``: the newest ``keep`` fires, how many were seen, and
    whether every one of them was seen."""
    kept: deque[float] = deque(maxlen=keep)
    seen = 0
    while fire is not None and fire <= now:
        if seen == budget:
            newest = _newest_fires(trigger, kept[-1], now, keep)
            kept.extend(newest)
            return list(kept), seen + len(newest), False
        kept.append(fire)
        seen += 1
        fire = trigger.next_fire(fire)
    return list(kept), seen, True


def _newest_fires(trigger: Trigger, after: float, upto: float, count: int) -> list[float]:
    """The newest ``count`` fires in ``(after, upto]``, oldest first."""
    fires: list[float] = []
    while len(fires) < count and (fire := _latest_fire(trigger, after, upto)) is not None:
        fires.append(fire)
        upto = math.nextafter(fire, -math.inf)
    return fires[::-1]


def _latest_fire(trigger: Trigger, after: float, upto: float) -> float | None:
    """The newest fire in ``(after, upto]``, found by bisection with ``next_fire`` only."""
    fire = trigger.next_fire(after)
    if fire is None or fire > upto:
        return None
    high = upto  # the newest fire lies in [fire, high]
    while (following := trigger.next_fire(fire)) is not None and following <= upto:
        probe = trigger.next_fire((following + high) / 2)
        if probe is not None and probe <= upto:
            fire = probe
        else:
            fire, high = following, (following + high) / 2
    return fire


def _check_epoch(field: str, value: float) -> None:
    require_number(field, value, unit="seconds")


def _check_count(field: str, value: int) -> None:
    require_int(field, value, minimum=1)
