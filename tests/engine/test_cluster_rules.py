"""Limits, rate limits and breakers hold across schedulers sharing one store.

Two schedulers on one SQLite file in one process behave as two worker
processes do (the multi-process tests in tests/multiprocess show the same with
real processes): the store decides at claim time, so a rule spent in one
scheduler holds the other's tasks -- SCHEDULED, with a ``wait_reason``, and no
attempt spent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from asched import RateLimit, Scheduler, TaskFailedError, TaskLifecycle
from asched.events import CircuitClosed, CircuitOpened, Event
from asched.testing import FakeClock

L = TaskLifecycle
Build = Callable[..., Scheduler]


async def eventually(check: Callable[[], Awaitable[bool]], within_s: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not await check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


class Gate:
    """Handlers that block until released, counting how many run at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.most = 0
        self.started = 0

    async def run(self, **_: Any) -> str:
        self.running += 1
        self.started += 1
        self.most = max(self.most, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return "ok"


@pytest.fixture
def pair(tmp_path: Path, make_scheduler: Build) -> Callable[..., tuple[Scheduler, Scheduler]]:
    def build(**settings: Any) -> tuple[Scheduler, Scheduler]:
        url = f"sqlite:///{tmp_path / 'cluster.db'}"
        return tuple(  # type: ignore[return-value]
            make_scheduler(store=url, lease_s=3600.0, **settings) for _ in range(2)
        )

    return build


async def status(s: Scheduler, task_id: str) -> tuple[L, str | None, int]:
    task = await s.get_task(task_id)
    return task.lifecycle, task.wait_reason, task.retries


async def test_a_key_limit_holds_across_schedulers(
    pair: Callable[..., tuple[Scheduler, Scheduler]],
) -> None:
    s1, s2 = pair()
    gate = Gate()
    for s in (s1, s2):
        s.register("upload", gate.run)
    async with s1, s2:
        first = await s1.schedule_task("upload", {"n": 1}, concurrency_key="c1")
        await eventually(lambda: _is(s1, first, L.RUNNING))
        second = await s2.schedule_task("upload", {"n": 2}, concurrency_key="c1")
        other = await s2.schedule_task("upload", {"n": 3}, concurrency_key="c2")
        await eventually(lambda: _is(s2, other, L.RUNNING))
        state, reason, retries = await status(s2, second)
        assert (state, retries) == (L.SCHEDULED, 0)
        assert reason == "concurrency key 'c1' is full (1 running)"
        gate.release.set()
        assert await s2.wait_for(second, timeout=5) == "ok"
        assert await s1.wait_for(first, timeout=5) == "ok"
    assert gate.most == 2  # c1 and c2 together; never two of c1


async def test_a_type_limit_holds_across_schedulers(
    pair: Callable[..., tuple[Scheduler, Scheduler]],
) -> None:
    s1, s2 = pair()
    gate = Gate()
    for s in (s1, s2):
        s.register("render", gate.run, concurrency=1)
    async with s1, s2:
        first = await s1.schedule_task("render")
        await eventually(lambda: _is(s1, first, L.RUNNING))
        second = await s2.schedule_task("render")
        await eventually(lambda: _reason(s2, second, "concurrency type 'render' is full"))
        gate.release.set()
        assert await s2.wait_for(second, timeout=5) == "ok"
    assert gate.most == 1


async def test_a_cancelled_held_task_gives_its_local_slot_back(
    pair: Callable[..., tuple[Scheduler, Scheduler]],
) -> None:
    s1, s2 = pair(max_concurrency=1)
    gate = Gate()
    for s in (s1, s2):
        s.register("upload", gate.run)
    async with s1, s2:
        first = await s1.schedule_task("upload", concurrency_key="c1")
        await eventually(lambda: _is(s1, first, L.RUNNING))
        held = await s2.schedule_task("upload", concurrency_key="c1")
        await eventually(lambda: _reason(s2, held, "is full"))
        free = await s2.schedule_task("upload")  # waits for s2's one local slot
        assert await s2.cancel_task(held)
        await eventually(lambda: _is(s2, free, L.RUNNING))
        gate.release.set()
        assert await s2.wait_for(free, timeout=5) == "ok"


async def test_a_rate_limit_holds_across_schedulers(
    pair: Callable[..., tuple[Scheduler, Scheduler]], clock: FakeClock
) -> None:
    s1, s2 = pair()
    ran: list[str] = []

    async def call(who: str) -> None:
        ran.append(who)

    for s in (s1, s2):
        s.register("call", call, rate_limit=RateLimit(1, 60), rate_limit_per="type")
    async with s1, s2:
        first = await s1.schedule_task("call", {"who": "s1"})
        await s1.wait_for(first, timeout=5)
        second = await s2.schedule_task("call", {"who": "s2"})
        await eventually(lambda: _reason(s2, second, "rate limit 'call:'"))
        assert (await status(s2, second))[2] == 0
        await clock.advance(60)
        await s2.wait_for(second, timeout=5)
    assert ran == ["s1", "s2"]


async def test_a_breaker_is_shared_with_exactly_its_trials_across_schedulers(
    pair: Callable[..., tuple[Scheduler, Scheduler]], clock: FakeClock
) -> None:
    s1, s2 = pair()
    gate = Gate()
    healthy = False
    heard: list[list[Event]] = [[], []]

    async def call(n: int) -> str:
        if not healthy:
            raise ConnectionError("503")
        return await gate.run()

    for s, events in zip((s1, s2), heard, strict=True):
        s.configure_breaker("api", failure_threshold=1, recovery_s=30, half_open_max_calls=1)
        s.register("call", call, breaker="api", max_retries=0)
        s.subscribe(events.append, states=())
    async with s1, s2:
        failing = await s1.schedule_task("call", {"n": 0})
        with pytest.raises(TaskFailedError, match="503"):
            await s1.wait_for(failing, timeout=5)
        await eventually(lambda: _breaker(s2, "open"))
        assert any(isinstance(e, CircuitOpened) for e in heard[1]), "s2 heard it from the store"
        held = await s2.schedule_task("call", {"n": 1})
        await eventually(lambda: _reason(s2, held, "circuit 'api' is open"))
        assert (await status(s2, held))[2] == 0

        healthy = True
        await clock.advance(30)  # half open: one trial for the whole cluster
        late = await s1.schedule_task("call", {"n": 2})
        await eventually(lambda: _started(gate, 1))
        waiting = ((s2, held), (s1, late))
        await eventually(lambda: _any_reason(waiting, "circuit 'api' is open (trials running)"))
        assert gate.started == 1
        gate.release.set()
        assert await s2.wait_for(held, timeout=5) == "ok"
        assert await s1.wait_for(late, timeout=5) == "ok"
        await eventually(lambda: _breakers((s1, s2), "closed"))
        assert any(isinstance(e, CircuitClosed) for e in heard[1])


async def _is(s: Scheduler, task_id: str, state: L) -> bool:
    return (await s.get_task(task_id)).lifecycle is state


async def _reason(s: Scheduler, task_id: str, text: str) -> bool:
    task = await s.get_task(task_id)
    return task.lifecycle is L.SCHEDULED and text in (task.wait_reason or "")


async def _any_reason(tasks: tuple[tuple[Scheduler, str], ...], text: str) -> bool:
    return any([await _reason(s, task_id, text) for s, task_id in tasks])


async def _started(gate: Gate, count: int) -> bool:
    return gate.started >= count


async def _breaker(s: Scheduler, state: str) -> bool:
    return s.breaker_states().get("api") == state


async def _breakers(schedulers: tuple[Scheduler, ...], state: str) -> bool:
    return all(s.breaker_states().get("api") == state for s in schedulers)
