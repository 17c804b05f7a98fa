"""Cluster-wide start rules, decided purely: concurrency slots, GCRA rate budgets
and shared circuit breakers, as a store applies them inside one start-claim.

A store that starts attempts for several workers loads what the rules need
(the slots held per name, the theoretical arrival time per rate key, the
breaker records), calls :func:`plan_claims` inside its transaction, and writes
back what the plan changed.  So one implementation of the rules serves every
store, and the store's transaction (or script) makes it atomic.

* A **slot** is a name (``"key:<concurrency_key>"``, ``"type:<task_type>"``)
  with a limit; a task starts only if each of its slots has room.
* A **rate budget** is GCRA (see :mod:`asched.core.ratelimit`): a start at
  ``now`` is allowed when ``now >= tat - tolerance``, and pushes ``tat`` to
  ``max(tat, now) + interval``.
* A **breaker record** is a circuit breaker's state as the cluster sees it:
  OPEN holds every start until ``open_until_s``; then HALF_OPEN admits exactly
  ``half_open_max_calls`` trials across all workers.  Outcomes are folded in by
  :func:`breaker_outcome`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asched.core.breaker import BreakerSettings, BreakerState, BreakerTransition

__all__ = [
    "BreakerNeed",
    "BreakerRecord",
    "ClaimNeed",
    "ClaimPlan",
    "Hold",
    "RateNeed",
    "breaker_admit",
    "breaker_outcome",
    "plan_claims",
]

OUTCOMES = ("succeeded", "failed", "abandoned")


@dataclass(frozen=True, slots=True)
class RateNeed:
    """A start spends one call of the GCRA budget ``key``."""

    key: str
    interval_s: float
    tolerance_s: float = 0.0


@dataclass(frozen=True, slots=True)
class BreakerNeed:
    """A start passes the shared breaker ``name``."""

    name: str
    settings: BreakerSettings


@dataclass(frozen=True, slots=True)
class ClaimNeed:
    """What starting one task takes besides its lease: ``slots`` as (name, limit)."""

    slots: tuple[tuple[str, int], ...] = ()
    rate: RateNeed | None = None
    breaker: BreakerNeed | None = None

    def __bool__(self) -> bool:
        return bool(self.slots) or self.rate is not None or self.breaker is not None


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a start was not granted.  ``kind`` is ``"slot"``, ``"rate"`` or
    ``"breaker"``; ``wake_at_s`` is when to try again (None: once something
    changes in the store -- a slot or a trial is given back)."""

    kind: str
    name: str
    reason: str
    wake_at_s: float | None = None


@dataclass(slots=True)
class BreakerRecord:
    """One circuit breaker's state, shared through a store."""

    name: str
    state: str = BreakerState.CLOSED.value
    generation: int = 0
    open_until_s: float = 0.0
    failures: int = 0
    trials: int = 0
    successes: int = 0
    changed_s: float = 0.0
    reason: str = ""
    #: failure-rate window: [bucket index, calls, failures], oldest first
    window: list[list[float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "generation": self.generation,
            "open_until_s": self.open_until_s,
            "failures": self.failures,
            "trials": self.trials,
            "successes": self.successes,
            "changed_s": self.changed_s,
            "reason": self.reason,
            "window": self.window,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BreakerRecord:
        return cls(
            str(data["name"]),
            str(data.get("state", "closed")),
            int(data.get("generation", 0)),
            float(data.get("open_until_s", 0.0)),
            int(data.get("failures", 0)),
            int(data.get("trials", 0)),
            int(data.get("successes", 0)),
            float(data.get("changed_s", 0.0)),
            str(data.get("reason", "")),
            [list(b) for b in data.get("window", [])],
        )


@dataclass(slots=True)
class ClaimPlan:
    """What one start-claim decided, and what the store must write back."""

    granted: list[str] = field(default_factory=list)
    holds: dict[str, Hold] = field(default_factory=dict)
    #: task id -> (breaker name, generation it was admitted in)
    admitted: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: slot name -> tasks granted it now (added to what was held)
    taken: dict[str, int] = field(default_factory=dict)
    tats: dict[str, float] = field(default_factory=dict)
    breakers: dict[str, BreakerRecord] = field(default_factory=dict)
    transitions: list[BreakerTransition] = field(default_factory=list)


def plan_claims(
    task_ids: Sequence[str],
    needs: Mapping[str, ClaimNeed],
    held: Mapping[str, int],
    tats: Mapping[str, float],
    breakers: Mapping[str, BreakerRecord],
    now_s: float,
) -> ClaimPlan:
    """Decide, best first, which of ``task_ids`` (all free to lease) may start.

    ``held`` counts the slots other tasks hold now; ``tats`` and ``breakers`` are
    the stored budgets and breaker records (missing: never used).  A task is
    granted only if every rule lets it; a refused one changes nothing."""
    plan = ClaimPlan()
    counts = dict(held)
    for task_id in task_ids:
        need = needs.get(task_id)
        if not need:
            plan.granted.append(task_id)
            continue
        hold = _slot_hold(need, counts) or _rate_hold(need, tats, plan.tats, now_s)
        if hold is None and need.breaker is not None:
            hold = _breaker_gate(task_id, need.breaker, breakers, plan, now_s)
        if hold is not None:
            plan.holds[task_id] = hold
            continue
        plan.granted.append(task_id)
        for name, _ in need.slots:
            counts[name] = counts.get(name, 0) + 1
            plan.taken[name] = plan.taken.get(name, 0) + 1
        rate = need.rate
        if rate is not None:
            tat = plan.tats.get(rate.key, tats.get(rate.key, now_s))
            plan.tats[rate.key] = max(tat, now_s) + rate.interval_s
    return plan


def _slot_hold(need: ClaimNeed, counts: Mapping[str, int]) -> Hold | None:
    for name, limit in need.slots:
        if counts.get(name, 0) >= limit:
            kind, _, label = name.partition(":")
            return Hold(
                "slot", name, f"concurrency {kind} {label!r} is full ({limit} running)", None
            )
    return None


def _rate_hold(
    need: ClaimNeed, stored: Mapping[str, float], planned: Mapping[str, float], now_s: float
) -> Hold | None:
    rate = need.rate
    if rate is None:
        return None
    tat = planned.get(rate.key, stored.get(rate.key))
    if tat is None:
        return None
    allow_at = tat - rate.tolerance_s
    if now_s >= allow_at:
        return None
    return Hold(
        "rate", rate.key, f"rate limit {rate.key!r}: next start at {allow_at:.3f}", allow_at
    )


def _breaker_gate(
    task_id: str,
    need: BreakerNeed,
    stored: Mapping[str, BreakerRecord],
    plan: ClaimPlan,
    now_s: float,
) -> Hold | None:
    record = plan.breakers.get(need.name)
    if record is None:
        found = stored.get(need.name)
        record = BreakerRecord(need.name) if found is None else _copy(found)
    before = record.generation
    hold, transitions = breaker_admit(record, need.settings.half_open_max_calls, now_s)
    if hold is None or record.generation != before:
        plan.breakers[need.name] = record
    plan.transitions.extend(transitions)
    if hold is None:
        plan.admitted[task_id] = (need.name, record.generation)
    return hold


def _copy(record: BreakerRecord) -> BreakerRecord:
    return BreakerRecord.from_json(record.to_json())


def breaker_admit(
    record: BreakerRecord, trials: int, now_s: float
) -> tuple[Hold | None, list[BreakerTransition]]:
    """May a start pass this breaker now?  Takes a trial when HALF_OPEN (changes
    ``record`` in place).  An OPEN breaker past ``open_until_s`` turns HALF_OPEN."""
    transitions: list[BreakerTransition] = []
    if record.state == BreakerState.OPEN.value and now_s >= record.open_until_s:
        transitions.append(
            _move(record, BreakerState.HALF_OPEN, record.open_until_s, "recovery time elapsed")
        )
    if record.state == BreakerState.CLOSED.value:
        return None, transitions
    reason = f"circuit {record.name!r} is open"
    if record.state == BreakerState.OPEN.value:
        return Hold("breaker", record.name, reason, record.open_until_s), transitions
    if record.trials + record.successes < trials:
        record.trials += 1
        return None, transitions
    return Hold("breaker", record.name, reason + " (trials running)", None), transitions


def breaker_outcome(
    record: BreakerRecord,
    settings: BreakerSettings,
    generation: int,
    outcome: str,
    now_s: float,
) -> list[BreakerTransition]:
    """Fold an admitted start's outcome (``succeeded``, ``failed``, ``abandoned``)
    into ``record`` (in place); one admitted in an older generation counts for
    nothing.  Returns the state changes."""
    if generation != record.generation:
        return []
    state = record.state
    if state == BreakerState.HALF_OPEN.value:
        record.trials = max(record.trials - 1, 0)
        if outcome == "failed":
            return [_open(record, settings, now_s, "a trial call failed")]
        if outcome == "succeeded":
            record.successes += 1
            if record.successes >= settings.half_open_max_calls:
                why = f"{record.successes} trial call(s) succeeded"
                return [_move(record, BreakerState.CLOSED, now_s, why)]
        return []
    if state != BreakerState.CLOSED.value or outcome == "abandoned":
        return []
    failed = outcome == "failed"
    if settings.failure_rate is None:
        record.failures = record.failures + 1 if failed else 0
        if record.failures >= settings.failure_threshold:
            return [_open(record, settings, now_s, f"{record.failures} consecutive failures")]
        return []
    calls, failures = _count(record, settings, now_s, failed)
    if failed and calls >= settings.min_calls and failures >= settings.failure_rate * calls:
        why = f"{failures} of {calls} calls failed within {settings.window_s:g}s"
        return [_open(record, settings, now_s, why)]
    return []


def _count(
    record: BreakerRecord, settings: BreakerSettings, now_s: float, failed: bool
) -> tuple[int, int]:
    """Add an outcome to the window (60 buckets of ``window_s / 60``); the totals."""
    bucket = float(now_s // (settings.window_s / 60))
    window = [b for b in record.window if b[0] > bucket - 60]
    if window and window[-1][0] >= bucket:
        window[-1][1] += 1
        window[-1][2] += 1 if failed else 0
    else:
        window.append([bucket, 1, 1 if failed else 0])
    record.window = window
    return int(sum(b[1] for b in window)), int(sum(b[2] for b in window))


def _open(
    record: BreakerRecord, settings: BreakerSettings, now_s: float, reason: str
) -> BreakerTransition:
    record.open_until_s = now_s + settings.recovery_s
    return _move(record, BreakerState.OPEN, now_s, reason)


def _move(record: BreakerRecord, to: BreakerState, at: float, reason: str) -> BreakerTransition:
    transition = BreakerTransition(record.name, BreakerState(record.state), to, at, reason)
    record.state = to.value
    record.generation += 1
    record.trials = 0
    record.successes = 0
    record.changed_s = at
    record.reason = reason
    if to is BreakerState.CLOSED:
        record.failures = 0
        record.window = []
    return transition
