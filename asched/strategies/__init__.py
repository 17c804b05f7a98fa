"""Composable async strategies: ``@retry`` and ``@circuit_breaker``, over the pure core."""

from __future__ import annotations

from asched.core.backoff import RetryPolicy
from asched.core.breaker import BreakerState, BreakerTransition
from asched.strategies.circuit_breaker import CircuitBreaker, circuit_breaker
from asched.strategies.retry import Retry, retry

__all__ = [
    "BreakerState",
    "BreakerTransition",
    "CircuitBreaker",
    "Retry",
    "RetryPolicy",
    "circuit_breaker",
    "retry",
]
