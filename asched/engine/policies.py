"""Per-task-type execution policies: retry, circuit breaking and rate limits.

The engine asks three questions here and does the rest itself:

* ``gate(task, now)`` — may this due task start now?  If a breaker guarding it
  is open, or a rate limit is spent, the answer is when to look again and why
  (the task waits; no retry attempt is spent).
* ``report(task, outcome, now)`` — an attempt ended: feed its breaker.
* ``retry_delay(task, exc)`` — a failed attempt: retry after how long, or not.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from asched.core.backoff import RetryPolicy, cap_delay_s, retry_delay_s
from asched.core.bounds import DEFAULT_MAX_BACKOFF_S
from asched.core.breaker import (
    BreakerSettings,
    BreakerState,
    BreakerTransition,
    CircuitBreakerCore,
)
from asched.core.claims import BreakerNeed, BreakerRecord, RateNeed
from asched.core.ratelimit import RateLimit, RateLimiter
from asched.errors import ConfigError, TaskValidationError
from asched.model import Task
from asched.strategies.retry import Retry

#: Names a breaker for a task: a fixed name, or a function of the task (e.g. per channel).
BreakerKey = str | Callable[[Task], str | None]

OUTCOME_SUCCEEDED, OUTCOME_FAILED, OUTCOME_ABANDONED = "succeeded", "failed", "abandoned"


@dataclass(frozen=True, slots=True)
class TypePolicy:
    retry: RetryPolicy | None = None
    breaker: BreakerKey | None = None
    rate_limit: RateLimit | None = None
    #: "concurrency_key": one budget per key (e.g. per channel); "type": one for the type
    rate_limit_per: str = "concurrency_key"

    @classmethod
    def checked(
        cls,
        retry: Any,
        breaker: Any,
        rate_limit: Any,
        rate_limit_per: Any = "concurrency_key",
    ) -> TypePolicy:
        """A policy from ``Scheduler.register``'s arguments, each checked."""
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TaskValidationError("retry", retry, "expected a RetryPolicy")
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise TaskValidationError("rate_limit", rate_limit, "expected a RateLimit")
        if breaker is not None and not (isinstance(breaker, str) or callable(breaker)):
            raise TaskValidationError("breaker", breaker, "expected a name or a function")
        if rate_limit_per not in ("concurrency_key", "type"):
            raise ConfigError(
                "rate_limit_per", rate_limit_per, "expected 'concurrency_key' or 'type'"
            )
        return cls(retry, breaker, rate_limit, rate_limit_per)

    @property
    def applies(self) -> bool:
        return self.retry is not None or self.breaker is not None or self.rate_limit is not None


@dataclass(frozen=True, slots=True)
class Gate:
    """Why a task may not start yet, and when to look again (None: on the next outcome)."""

    wake_at_s: float | None
    reason: str
    breaker: str | None = None


class Policies:
    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._types: dict[str, TypePolicy] = {}
        self._limiters: dict[str, RateLimiter[str | None]] = {}
        self._breaker_settings: dict[str, BreakerSettings] = {}
        self.breakers: dict[str, CircuitBreakerCore] = {}
        # task id -> (breaker, generation) for attempts admitted through a breaker
        self._admitted: dict[str, tuple[CircuitBreakerCore, int]] = {}
        #: With a shared store, the store decides rate limits and breakers at claim
        #: time; the gate here then only holds tasks of a breaker the cluster has
        #: OPEN (its last seen records, by name).
        self.shared: dict[str, BreakerRecord] | None = None

    def set_type_policy(self, task_type: str, policy: TypePolicy) -> None:
        if policy.rate_limit_per not in ("concurrency_key", "type"):
            raise ConfigError(
                "rate_limit_per", policy.rate_limit_per, "expected 'concurrency_key' or 'type'"
            )
        self._types[task_type] = policy
        if policy.rate_limit is not None:
            self._limiters[task_type] = RateLimiter(policy.rate_limit)

    def configure_breaker(
        self, name: str, settings: BreakerSettings | None = None, **changes: Any
    ) -> CircuitBreakerCore:
        """Settings for breaker ``name`` (a BreakerSettings, or its fields by keyword);
        replaces the breaker."""
        chosen = BreakerSettings.of(settings, **changes)
        breaker = CircuitBreakerCore(name, chosen)
        self._breaker_settings[name] = chosen
        self.breakers[name] = breaker
        return breaker

    def is_gated(self, task_type: str) -> bool:
        policy = self._types.get(task_type)
        return policy is not None and (policy.breaker is not None or policy.rate_limit is not None)

    def retry_policy(self, task_type: str) -> RetryPolicy | None:
        policy = self._types.get(task_type)
        return None if policy is None else policy.retry

    # -- gate ------------------------------------------------------------------------

    def gate(self, task: Task, now_s: float) -> Gate | None:
        policy = self._types[task.type]
        if self.shared is not None:
            return self._shared_gate(task, policy, now_s)
        limiter = self._limiters.get(task.type)
        budget_key = task.concurrency_key if policy.rate_limit_per == "concurrency_key" else None
        if limiter is not None:
            wait = limiter.peek(budget_key, now_s)
            if wait > 0:
                return Gate(now_s + wait, self._rate_reason(policy, budget_key))
        if policy.breaker is not None:
            breaker = self._breaker_for(task, policy.breaker)
            if breaker is not None:
                if not breaker.allow(now_s):
                    after = breaker.retry_after(now_s)
                    wake = None if after is None else now_s + max(after, 1e-3)
                    return Gate(wake, f"circuit {breaker.name!r} is open", breaker.name)
                self._admitted[task.id] = (breaker, breaker.generation)
        if limiter is not None:
            limiter.try_acquire(budget_key, now_s)
        return None

    def _shared_gate(self, task: Task, policy: TypePolicy, now_s: float) -> Gate | None:
        """The cluster's breaker is OPEN (as last seen): hold until it may half-open."""
        if policy.breaker is None or self.shared is None:
            return None
        name = _breaker_name(task, policy.breaker)
        record = None if name is None else self.shared.get(name)
        if record is None or record.state != "open" or now_s >= record.open_until_s:
            return None
        return Gate(record.open_until_s, f"circuit {record.name!r} is open", None)

    def claim_rules(self, task: Task) -> tuple[RateNeed | None, BreakerNeed | None]:
        """What a start of ``task`` needs from the store's rate budgets and breakers."""
        policy = self._types.get(task.type)
        if policy is None:
            return None, None
        rate_need = None
        rate = policy.rate_limit
        if rate is not None:
            per_key = policy.rate_limit_per == "concurrency_key"
            budget = task.concurrency_key if per_key and task.concurrency_key else ""
            interval = rate.interval_s
            rate_need = RateNeed(f"{task.type}:{budget}", interval, rate.burst * interval)
        breaker_need = None
        if policy.breaker is not None:
            name = _breaker_name(task, policy.breaker)
            if name is not None:
                settings = self._breaker_settings.get(name) or BreakerSettings()
                breaker_need = BreakerNeed(name, settings)
        return rate_need, breaker_need

    def breaker_settings(self, name: str) -> BreakerSettings:
        return self._breaker_settings.get(name) or BreakerSettings()

    def _breaker_for(self, task: Task, key: BreakerKey) -> CircuitBreakerCore | None:
        name = key if isinstance(key, str) else key(task)
        if name is None:
            return None
        breaker = self.breakers.get(name)
        if breaker is None:
            breaker = self.configure_breaker(name, self._breaker_settings.get(name))
        return breaker

    @staticmethod
    def _rate_reason(policy: TypePolicy, key: str | None) -> str:
        rate = policy.rate_limit
        assert rate is not None
        scope = f" for {key!r}" if key is not None else ""
        return f"rate limit {rate.limit} per {rate.period_s:g}s{scope}"

    # -- outcomes --------------------------------------------------------------------

    def report(
        self, task: Task, outcome: str, now_s: float
    ) -> tuple[str | None, list[BreakerTransition]]:
        """Record an attempt's outcome with its breaker; returns the breaker's name
        (None if the attempt did not pass one) and its state changes."""
        admitted = self._admitted.pop(task.id, None)
        if admitted is None:
            return None, []
        breaker, generation = admitted
        if outcome == OUTCOME_SUCCEEDED:
            breaker.record_success(now_s, generation)
        elif outcome == OUTCOME_FAILED:
            breaker.record_failure(now_s, generation)
        else:
            breaker.release(generation)
        return breaker.name, breaker.drain_transitions() if breaker.has_transitions else []

    def breaker_states(self, now_s: float) -> Mapping[str, BreakerState]:
        if self.shared is not None:
            states = dict.fromkeys(self.breakers, BreakerState.CLOSED)
            states.update({name: _seen_state(r, now_s) for name, r in self.shared.items()})
            return states
        return {name: b.state(now_s) for name, b in self.breakers.items()}

    # -- retries ---------------------------------------------------------------------

    def retry_delay(
        self, task: Task, exc: BaseException | None, max_backoff_s: float = DEFAULT_MAX_BACKOFF_S
    ) -> float | None:
        """Seconds before the next attempt, or None to give up.  ``exc`` is None for
        failures without an exception (a timeout is passed as its error)."""
        if task.retries >= task.max_retries:
            return None
        if isinstance(exc, Retry) and exc.delay_s is not None:
            return retry_delay_s(1.0, 0, requested_s=exc.delay_s, max_backoff_s=max_backoff_s)
        policy = self.retry_policy(task.type)
        if policy is None:
            return retry_delay_s(task.backoff_factor, task.retries + 1, max_backoff_s=max_backoff_s)
        if (
            exc is not None
            and not isinstance(exc, Retry)
            and (not isinstance(exc, policy.retry_on) or isinstance(exc, policy.give_up_on))
        ):
            return None
        if policy.backoff_factor != task.backoff_factor:
            policy = replace(policy, backoff_factor=task.backoff_factor)
        return cap_delay_s(policy.delay_s(task.retries + 1, self._rng), max_backoff_s)


def _breaker_name(task: Task, key: BreakerKey) -> str | None:
    return key if isinstance(key, str) else key(task)


def _seen_state(record: BreakerRecord, now_s: float) -> BreakerState:
    if record.state == "open" and now_s >= record.open_until_s:
        return BreakerState.HALF_OPEN
    return BreakerState(record.state)
