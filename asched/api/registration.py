"""Registering a task type: its handler, options and policies, on the engine."""

from __future__ import annotations

from collections.abc import Callable
from types import EllipsisType
from typing import Any

from asched.core.backoff import RetryPolicy
from asched.core.ratelimit import RateLimit
from asched.engine.loop import Engine
from asched.engine.policies import BreakerKey, Policies, TypePolicy
from asched.engine.retention import check_ttl


def register_type(
    engine: Engine,
    policies: Policies,
    name: str,
    handler: Callable[..., Any],
    *,
    executor: str | None,
    max_retries: int | None,
    backoff_factor: float | None,
    timeout: float | None,
    concurrency: int | None,
    retry: RetryPolicy | None,
    breaker: BreakerKey | None,
    rate_limit: RateLimit | None,
    rate_limit_per: str,
    result_ttl_s: float | EllipsisType | None,
) -> None:
    """See :meth:`asched.Scheduler.register`.  Everything is checked before anything
    is registered."""
    policy = TypePolicy.checked(retry, breaker, rate_limit, rate_limit_per)
    if retry is not None:
        max_retries = retry.max_retries if max_retries is None else max_retries
        backoff_factor = retry.backoff_factor if backoff_factor is None else backoff_factor
    ttl = None if isinstance(result_ttl_s, EllipsisType) else check_ttl(result_ttl_s)
    definition = engine.registry.register(
        name,
        handler,
        executor=executor,
        max_retries=max_retries,
        backoff_factor=backoff_factor,
        timeout=timeout,
        concurrency=concurrency,
    )
    if policy.applies:
        policies.set_type_policy(name, policy)
    if definition.concurrency is not None:
        engine.set_type_limit(name, definition.concurrency)
    if not isinstance(result_ttl_s, EllipsisType):
        engine.result_ttls[name] = ttl
    if policies.is_gated(name):
        engine.gate_type(name)
