"""The per-task fast paths must behave exactly like the general paths they shortcut.

``schedule_task`` on the memory store admits a task with no idempotency key and
no dependencies in one synchronous step (``Engine.submit_now`` arms it inline);
``Engine.move`` builds its events inline; ``Engine.release`` frees a plain slot
inline; a completed task with nobody to tell skips ``Engine.settle``;
``ArmedWheel.insert`` places its timer inline.  Each is compared here with the
general path: the batch admission, ``announce``, ``ReadyLine.release``, the
``TimerWheel``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asched import Scheduler, TaskLifecycle
from asched.core.wheel import TimerWheel
from asched.engine.hub import announce
from asched.engine.timers import ArmedWheel
from asched.model import Task
from asched.testing import FakeClock

L = TaskLifecycle
Trace = list[tuple[str, int, TaskLifecycle, TaskLifecycle, str | None, float | None, float]]

SPECS: list[dict[str, Any]] = [
    {"task_type": "job", "task_data": {"n": 1}},
    {"task_type": "job", "task_data": {"n": 2}, "priority": "HIGH"},
    {"task_type": "job", "task_data": {"n": 3}, "delay": 30},
    {"task_type": "job", "task_data": {"n": 4}, "delay": 10, "concurrency_key": "k"},
    {"task_type": "job", "task_data": {"n": 5}, "concurrency_key": "k"},
    {"task_type": "job"},
]


async def _run(
    make_scheduler: Callable[..., Scheduler],
    schedule: Callable[[Scheduler, list[dict[str, Any]]], Any],
    **settings: Any,
) -> tuple[Trace, list[tuple[Any, ...]], list[int]]:
    """Schedule SPECS one way, run them all; every event, each task's end, the counts."""
    clock = FakeClock()  # each run from the same instant
    s = make_scheduler(clock=clock, **settings)
    events: list[Any] = []
    s.subscribe(events.append)

    @s.task("job")
    async def job(n: int = 0) -> int:
        await asyncio.sleep(0)
        return n * 10

    async with s:
        specs = [
            {**spec, "task_id": f"t{index}", "created_by": "someone"}
            for index, spec in enumerate(SPECS)
        ]
        ids = await schedule(s, specs)
        assert ids == [spec["task_id"] for spec in specs]
        for _ in range(4):
            await clock.advance(15)
        results = [await s.wait_for(task_id, timeout=5) for task_id in ids]
        tasks = [await s.get_task(task_id) for task_id in ids]
        counts = [s._engine.state_count(state) for state in TaskLifecycle]
        held = [task_id for task_id in ids if s._engine.holds(task_id)]
    trace: Trace = [
        (e.task_id, int(e.priority), e.from_state, e.to_state, e.reason, e.started_s, e.due_s)
        for e in events
    ]
    ends = [
        (t.lifecycle, t.result, t.retries, [(h.from_state, h.to_state) for h in t.history])
        for t in tasks
    ]
    assert held == []
    return trace, [(*end, result) for end, result in zip(ends, results, strict=True)], counts


async def _one_by_one(s: Scheduler, specs: list[dict[str, Any]]) -> list[str]:
    return [await s.schedule_task(**spec) for spec in specs]


async def _keyed(s: Scheduler, specs: list[dict[str, Any]]) -> list[str]:
    """An idempotency key takes the general (awaited) admission path."""
    return [await s.schedule_task(**spec, idempotency_key=spec["task_id"]) for spec in specs]


async def _batch(s: Scheduler, specs: list[dict[str, Any]]) -> list[str]:
    return await s.schedule_many(specs)


@pytest.mark.parametrize("fair_share", [False, True])
@pytest.mark.parametrize("other", [_keyed, _batch], ids=["keyed", "batch"])
async def test_the_synchronous_admission_does_what_the_general_one_does(
    make_scheduler: Callable[..., Scheduler],
    other: Callable[[Scheduler, list[dict[str, Any]]], Any],
    fair_share: bool,
) -> None:
    fast = await _run(make_scheduler, _one_by_one, fair_share=fair_share, audit=False)
    general = await _run(make_scheduler, other, fair_share=fair_share, audit=False)
    assert fast == general
    trace, ends, _ = fast
    assert {end[0] for end in ends} == {L.COMPLETED}
    assert [step[3] for step in trace if step[0] == "t0"] == [
        L.QUEUED,
        L.SCHEDULED,
        L.RUNNING,
        L.COMPLETED,
    ]


async def test_the_one_coroutine_durable_admission_does_what_the_general_one_does(
    make_scheduler: Callable[..., Scheduler], tmp_path: Path
) -> None:
    """On a durable store a plain ``schedule_task`` awaits the insert itself, the
    engine's half before and after it (``Engine.store_lone``, ``Engine.stored``);
    a keyed one takes the general path."""
    fast = await _run(make_scheduler, _one_by_one, store=_sqlite(tmp_path, "fast"), audit=False)
    general = await _run(make_scheduler, _keyed, store=_sqlite(tmp_path, "general"), audit=False)

    # Commits interleave the tasks' events differently, and a start waits for its
    # claim to commit while the clock moves on: each task's own steps are the same.
    def steps(trace: Trace) -> list[tuple[Any, ...]]:
        return sorted((e[:5] for e in trace), key=lambda e: e[0])

    assert steps(fast[0]) == steps(general[0])
    assert fast[1:] == general[1:]
    assert {end[0] for end in fast[1]} == {L.COMPLETED}


def _sqlite(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}.db"


@pytest.mark.parametrize("durable", [False, True], ids=["memory", "sqlite"])
async def test_a_duplicate_id_is_refused_on_the_synchronous_path_too(
    make_scheduler: Callable[..., Scheduler], tmp_path: Path, durable: bool
) -> None:
    store = _sqlite(tmp_path, "dup") if durable else "memory://"
    s = make_scheduler(store=store, audit=False)

    @s.task("job")
    async def job() -> None:
        return None

    async with s:
        await s.schedule_task("job", task_id="same")
        with pytest.raises(ValueError, match="already exists"):
            await s.schedule_task("job", task_id="same")
        with pytest.raises(ValueError, match="already exists"):
            await s.schedule_task("job", task_id="same", idempotency_key="other")
        assert not s._engine.arriving


def test_an_event_built_by_move_equals_the_one_announce_builds() -> None:
    task = Task("t1", "job", due_s=5.0)
    task.started_s = 7.0
    heard: list[Any] = []
    announce([heard.append], task, 9.0, L.RUNNING, L.COMPLETED, "why")
    s = Scheduler(audit=False)
    engine = s._engine
    engine.subscribe(heard.append, [L.QUEUED, L.SCHEDULED, L.COMPLETED])
    for target in (L.QUEUED, L.SCHEDULED, L.RUNNING):
        engine.move(task, target, 8.0, None)
    task.started_s = 7.0
    engine.move(task, L.COMPLETED, 9.0, "why")
    by_announce, *by_move = heard
    assert by_move[-1] == by_announce
    assert type(by_move[-1]) is type(by_announce)
    assert [type(e).__name__ for e in by_move] == ["TaskQueued", "TaskScheduled", "TaskCompleted"]


async def test_nobody_to_tell_or_somebody_waiting_a_completed_task_is_let_go(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler(audit=False)
    gate = asyncio.Event()

    @s.task("job")
    async def job() -> str:
        await gate.wait()
        return "done"

    async with s:
        alone = await s.schedule_task("job")
        watched = await s.schedule_task("job")
        waiting = asyncio.ensure_future(s.wait_for(watched, timeout=5))
        await clock.advance(0)
        gate.set()
        assert await waiting == "done"
        assert await s.wait_for(alone, timeout=5) == "done"
        assert not s._engine.holds(alone) and not s._engine.holds(watched)
        assert s._engine.state_count(L.RUNNING) == 0


KEYS = [None, "a", "b"]


@pytest.mark.parametrize("type_limit", [False, True])
async def test_the_inline_release_frees_slots_like_the_ready_line(
    make_scheduler: Callable[..., Scheduler], type_limit: bool
) -> None:
    """Tasks without a key (released inline unless a type limit exists) and keyed
    ones (released by the ready line) share a small pool: every slot comes back,
    no key runs twice at once."""
    s = make_scheduler(audit=False, max_concurrency=3)
    running: dict[str | None, int] = {}
    peak: dict[str | None, int] = {}

    async def run(key: str | None = None) -> None:
        running[key] = running.get(key, 0) + 1
        peak[key] = max(peak.get(key, 0), running[key])
        peak["all"] = max(peak.get("all", 0), sum(running.values()))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        running[key] -= 1

    s.register("job", run)
    s.register("capped", run, concurrency=2 if type_limit else None)
    async with s:
        ids = []
        for n in range(30):
            key = KEYS[n % 3]
            ids.append(await s.schedule_task("job", {"key": key}, concurrency_key=key))
        if type_limit:
            ids += [await s.schedule_task("capped") for _ in range(3)]
        for task_id in ids:
            await s.wait_for(task_id, timeout=5)
        limits = s._engine.limits
        assert limits.running == 0
        assert all(limits.running_for_key(k) == 0 for k in ("a", "b"))
        assert limits.running_for_type("capped") == 0
    assert peak["a"] == peak["b"] == 1
    assert peak["all"] == 3, "the pool of 3 is used whole and never exceeded"


due_times = st.lists(st.floats(0.0, 5000.0, allow_nan=False), max_size=40)
advances = st.lists(st.floats(0.0, 2000.0, allow_nan=False), min_size=1, max_size=8)


@given(due_times, advances)
def test_the_armed_wheel_holds_and_hands_back_what_a_timer_wheel_does(
    dues: list[float], steps: list[float]
) -> None:
    asyncio.run(_compare_wheels(dues, steps))


async def _compare_wheels(dues: list[float], steps: list[float]) -> None:
    clock = FakeClock(0.0)
    rung: list[int] = []
    armed: ArmedWheel[int] = ArmedWheel(clock, lambda items, now: rung.extend(items))
    plain: TimerWheel[int] = TimerWheel(0.0)
    timers = [(armed.insert(due, n), plain.insert(due, n)) for n, due in enumerate(dues)]
    live = dict(enumerate(dues))
    for n, (one, other) in list(enumerate(timers))[::3]:
        armed.cancel(one)
        plain.cancel(other)
        del live[n]
    assert len(armed) == len(plain) == len(live)
    assert armed.next_deadline() == plain.next_deadline()
    now = 0.0
    for step in steps:
        now += step
        rung.clear()
        await clock.advance_to(now)
        assert sorted(rung) == sorted(plain.advance(now))
        for n in rung:
            del live[n]
        assert len(armed) == len(plain) == len(live)
        if live:  # armed, and never late for the earliest (a cancel may leave it early)
            armed_at = clock.next_deadline()
            assert armed_at is not None and armed_at <= min(live.values())


def test_arming_uses_the_earliest_deadline() -> None:
    clock = FakeClock(0.0)
    wheel: ArmedWheel[str] = ArmedWheel(clock, lambda items, now: None)
    wheel.insert(50.0, "late")
    assert clock.next_deadline() == 50.0
    wheel.insert(10.0, "early")
    assert clock.next_deadline() == 10.0
    wheel.insert(30.0, "middle")
    assert clock.next_deadline() == 10.0
