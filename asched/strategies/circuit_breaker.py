"""``CircuitBreaker`` and ``@circuit_breaker``: fail fast while a dependency is down.

::

    @circuit_breaker(failure_threshold=3, recovery_s=60.0)
    async def publish(video_id: str) -> None: ...

    youtube = CircuitBreaker("youtube", failure_rate=0.5, min_calls=20)

    @youtube                      # or @circuit_breaker(breaker=youtube)
    async def upload(path: str) -> str: ...

    await youtube.call(fetch_stats, "c1")

While the circuit is open, calls raise :class:`~asched.errors.CircuitOpenError`
without running. The state machine is :class:`~asched.core.breaker.CircuitBreakerCore`;
this module only feeds it the clock and the outcomes. It is meant for one event
loop (no locks: nothing awaits between the admission check and taking the slot).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeAlias, TypeVar, overload

from asched.clock import monotonic
from asched.core.breaker import BreakerSettings, BreakerState, BreakerTransition, CircuitBreakerCore
from asched.errors import CircuitOpenError, ConfigError

__all__ = ["CircuitBreaker", "Clock", "circuit_breaker"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

Clock: TypeAlias = Callable[[], float]
TransitionListener: TypeAlias = Callable[[BreakerTransition], object]
_AsyncFunc: TypeAlias = Callable[P, Awaitable[T]]
_Wrapped: TypeAlias = Callable[P, Coroutine[Any, Any, T]]

# Calls ended by these gave no verdict on the dependency: their slot is released.
_NO_VERDICT = (asyncio.CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit)


class CircuitBreaker:
    """An async circuit breaker around :class:`CircuitBreakerCore`, shareable by many functions.

    Exceptions matching ``failure_on`` count as failures; any other outcome,
    including other exceptions (the dependency did answer), counts as a
    success; a cancelled call counts as neither. ``on_transition`` (if given)
    receives each state change; otherwise they queue for ``drain_transitions()``.
    """

    __slots__ = ("_clock", "_on_transition", "core", "failure_on")

    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        *,
        failure_on: tuple[type[BaseException], ...] = (Exception,),
        clock: Clock = monotonic,
        on_transition: TransitionListener | None = None,
        **changes: Any,
    ) -> None:
        if not isinstance(failure_on, tuple) or not all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in failure_on
        ):
            raise ConfigError("failure_on", failure_on, "must be a tuple of exception classes")
        self.core = CircuitBreakerCore(name, BreakerSettings.of(settings, **changes))
        self.failure_on = failure_on
        self._clock = clock
        self._on_transition = on_transition

    @property
    def name(self) -> str:
        return self.core.name

    @property
    def state(self) -> BreakerState:
        state = self.core.state(self._clock())
        self._notify()
        return state

    def drain_transitions(self) -> list[BreakerTransition]:
        """State changes not yet handed to a listener, oldest first."""
        return self.core.drain_transitions()

    async def call(self, func: _AsyncFunc[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``func(*args, **kwargs)`` if the circuit admits it, else raise CircuitOpenError."""
        core = self.core
        now = self._clock()
        if not core.allow(now):
            self._notify()
            raise CircuitOpenError(core.name, core.retry_after(now))
        generation = core.generation
        self._notify()
        try:
            result = await func(*args, **kwargs)
        except _NO_VERDICT:
            core.release(generation)
            raise
        except BaseException as exc:
            if isinstance(exc, self.failure_on):
                core.record_failure(self._clock(), generation)
            else:
                core.record_success(self._clock(), generation)
            self._notify()
            raise
        core.record_success(self._clock(), generation)
        self._notify()
        return result

    def __call__(self, func: _AsyncFunc[P, T], /) -> _Wrapped[P, T]:
        """Decorate ``func`` so that every call goes through this breaker."""

        @functools.wraps(func)
        async def call_through_breaker(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(func, *args, **kwargs)

        return call_through_breaker

    def _notify(self) -> None:
        listener = self._on_transition
        if listener is None or not self.core.has_transitions:
            return
        for transition in self.core.drain_transitions():
            try:
                listener(transition)
            except Exception:
                # A broken listener must not turn a call's outcome into its own error.
                logger.exception("circuit %r: transition listener failed", self.core.name)


@overload
def circuit_breaker(func: _AsyncFunc[P, T], /) -> _Wrapped[P, T]: ...


@overload
def circuit_breaker(
    func: None = None,
    /,
    *,
    breaker: CircuitBreaker | None = None,
    name: str | None = None,
    settings: BreakerSettings | None = None,
    failure_on: tuple[type[BaseException], ...] | None = None,
    clock: Clock | None = None,
    on_transition: TransitionListener | None = None,
    **changes: Any,
) -> Callable[[_AsyncFunc[P, T]], _Wrapped[P, T]]: ...


def circuit_breaker(
    func: _AsyncFunc[P, T] | None = None,
    /,
    *,
    breaker: CircuitBreaker | None = None,
    name: str | None = None,
    settings: BreakerSettings | None = None,
    failure_on: tuple[type[BaseException], ...] | None = None,
    clock: Clock | None = None,
    on_transition: TransitionListener | None = None,
    **changes: Any,
) -> _Wrapped[P, T] | Callable[[_AsyncFunc[P, T]], _Wrapped[P, T]]:
    """Guard a coroutine function with a circuit breaker; usable bare or with arguments.

    Without ``breaker=``, each decorated function gets its own breaker named
    ``name`` (default: the function's qualified name), shared by all instances
    when it is a method, with ``settings`` and any :class:`BreakerSettings`
    field given by keyword (``failure_threshold=3``). Pass ``breaker=`` to share
    one breaker between functions; settings are then taken from that breaker and
    may not be given.
    """
    options: dict[str, Any] = {
        key: value
        for key, value in (
            ("settings", settings),
            ("failure_on", failure_on),
            ("clock", clock),
            ("on_transition", on_transition),
        )
        if value is not None
    }
    options.update(changes)
    if breaker is not None and (options or name is not None):
        given = ", ".join(sorted([*options, *(["name"] if name is not None else [])]))
        raise ConfigError("breaker", breaker.name, f"given together with {given}; pass one")

    def decorate(fn: _AsyncFunc[P, T]) -> _Wrapped[P, T]:
        if breaker is not None:
            return breaker(fn)
        label: str = name if name is not None else getattr(fn, "__qualname__", repr(fn))
        return CircuitBreaker(label, **options)(fn)

    return decorate if func is None else decorate(func)
