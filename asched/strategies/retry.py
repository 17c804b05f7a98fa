"""``@retry``: run a coroutine function again after a failure, with backoff.

::

    @retry
    async def fetch() -> bytes: ...

    @retry(max_retries=5, jitter="full", retry_on=(OSError,))
    async def upload(video: Path) -> str: ...

A handler may also ask for a retry itself with ``raise Retry(delay_s=60.0)``.
Cancellation (``asyncio.CancelledError``) is never retried, nor are
``KeyboardInterrupt`` and ``SystemExit``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any, ParamSpec, TypeAlias, TypeVar, overload

from asched.core.backoff import Jitter, RetryPolicy, cap_delay_s
from asched.errors import TaskValidationError

__all__ = ["Retry", "Sleep", "retry"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

Sleep: TypeAlias = Callable[[float], Awaitable[object]]
_AsyncFunc: TypeAlias = Callable[P, Awaitable[T]]
_Wrapped: TypeAlias = Callable[P, Coroutine[Any, Any, T]]

# Never retried, whatever retry_on says: they mean "stop", not "failed".
_STOP_SIGNALS = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


class Retry(Exception):
    """Raised by a handler to ask for another attempt, after ``delay_s`` if given.

    It counts towards ``max_retries`` like any failure; ``delay_s`` replaces the
    policy's backoff (not capped, not jittered), and ``None`` keeps the backoff.
    When no retries are left, the ``Retry`` itself propagates.
    """

    def __init__(self, delay_s: float | None = None) -> None:
        if delay_s is not None and not (
            isinstance(delay_s, int | float) and math.isfinite(delay_s) and delay_s >= 0
        ):
            raise TaskValidationError("delay_s", delay_s, "must be None or a finite number >= 0")
        self.delay_s = delay_s
        super().__init__("retry requested" + (f" in {delay_s:g}s" if delay_s is not None else ""))


@overload
def retry(func: _AsyncFunc[P, T], /) -> _Wrapped[P, T]: ...


@overload
def retry(
    func: None = None,
    /,
    *,
    policy: RetryPolicy | None = None,
    max_retries: int | None = None,
    backoff_factor: float | None = None,
    base: float | None = None,
    max_delay: float | None = None,
    jitter: Jitter | None = None,
    retry_on: tuple[type[BaseException], ...] | None = None,
    give_up_on: tuple[type[BaseException], ...] | None = None,
    sleep: Sleep | None = None,
    rng: random.Random | None = None,
) -> Callable[[_AsyncFunc[P, T]], _Wrapped[P, T]]: ...


def retry(
    func: _AsyncFunc[P, T] | None = None,
    /,
    *,
    policy: RetryPolicy | None = None,
    max_retries: int | None = None,
    backoff_factor: float | None = None,
    base: float | None = None,
    max_delay: float | None = None,
    jitter: Jitter | None = None,
    retry_on: tuple[type[BaseException], ...] | None = None,
    give_up_on: tuple[type[BaseException], ...] | None = None,
    sleep: Sleep | None = None,
    rng: random.Random | None = None,
) -> _Wrapped[P, T] | Callable[[_AsyncFunc[P, T]], _Wrapped[P, T]]:
    """Retry a coroutine function on failure; usable bare or with arguments.

    Settings passed here override those of ``policy`` (default
    :class:`RetryPolicy`); a ``None`` setting keeps the policy's. After the last
    retry the last exception propagates. ``sleep`` (default ``asyncio.sleep``)
    and ``rng`` are injectable so tests need not wait.
    """
    overrides: dict[str, Any] = {
        name: value
        for name, value in (
            ("max_retries", max_retries),
            ("backoff_factor", backoff_factor),
            ("base", base),
            ("max_delay", max_delay),
            ("jitter", jitter),
            ("retry_on", retry_on),
            ("give_up_on", give_up_on),
        )
        if value is not None
    }
    resolved = replace(policy or RetryPolicy(), **overrides)

    def decorate(fn: _AsyncFunc[P, T]) -> _Wrapped[P, T]:
        return _with_retries(fn, resolved, sleep or asyncio.sleep, rng)

    return decorate if func is None else decorate(func)


def _with_retries(
    func: _AsyncFunc[P, T], policy: RetryPolicy, sleep: Sleep, rng: random.Random | None
) -> _Wrapped[P, T]:
    name = getattr(func, "__qualname__", repr(func))

    @functools.wraps(func)
    async def run_with_retries(*args: P.args, **kwargs: P.kwargs) -> T:
        retries = 0
        while True:
            try:
                return await func(*args, **kwargs)
            except Retry as request:
                if retries >= policy.max_retries:
                    raise
                retries += 1
                delay_s = request.delay_s
                if delay_s is None:
                    delay_s = policy.delay_s(retries, rng)
                delay_s = cap_delay_s(delay_s)  # a requested delay obeys the same cap
                failure: BaseException = request
            except _STOP_SIGNALS:
                raise
            except BaseException as exc:
                if not policy.should_retry(exc, retries):
                    raise
                retries += 1
                delay_s = policy.delay_s(retries, rng)
                failure = exc
            logger.debug(
                "retrying %s in %.3gs (retry %d of %d) after %r",
                name,
                delay_s,
                retries,
                policy.max_retries,
                failure,
            )
            del failure  # do not keep the traceback alive across the sleep
            await sleep(delay_s)

    return run_with_retries
