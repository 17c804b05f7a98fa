"""Control from anywhere on a shared store: several schedulers on one SQLite
file (in one process here, as processes would share it; the multi-process
tests run the same rules across real processes)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from asched import Scheduler, TaskLifecycle
from asched.model import Task
from asched.stores.sqlite.store import SQLiteStore

L = TaskLifecycle


class Bench:
    """Schedulers on one file, each with the handlers asked for; all stopped after."""

    def __init__(self, db: Path, url: str | None = None) -> None:
        self.db = db
        self.url = url or f"sqlite:///{db}"
        self.made: list[Scheduler] = []
        self.log: list[tuple[str, str, float]] = []  # (event, task name, loop time)
        self.gates: dict[str, asyncio.Event] = {}

    def scheduler(self, *types: str) -> Scheduler:
        scheduler = Scheduler(self.url, lease_s=2.0, strict_task_types=False)
        for name in types:
            self._handler(scheduler, name)
        self.made.append(scheduler)
        return scheduler

    def _handler(self, scheduler: Scheduler, name: str) -> None:
        gate = self.gates.setdefault(name, asyncio.Event())

        @scheduler.task(name, max_retries=0)
        async def run(fail: bool = False) -> str:
            self.log.append(("start", name, time.monotonic()))
            try:
                await gate.wait()
            except asyncio.CancelledError:
                self.log.append(("cancelled", name, time.monotonic()))
                raise
            self.log.append(("end", name, time.monotonic()))
            if fail:
                raise RuntimeError(f"{name} failed")
            return name

    def started(self, name: str) -> bool:
        return ("start", name) in {(e, n) for e, n, _ in self.log}


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    async for made in _bench(Bench(tmp_path / "bot.db")):
        yield made


@pytest.fixture(params=["sqlite", "redis"])
async def any_bench(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Bench]:
    """The rules that hold on every shared store."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    async for made in _bench(Bench(tmp_path / "bot.db", url)):
        yield made


async def _bench(made: Bench) -> AsyncIterator[Bench]:
    yield made
    for gate in made.gates.values():
        gate.set()
    for scheduler in made.made:
        await scheduler.stop(grace_s=0)


async def _until(check: Callable[[], Any], timeout_s: float = 5.0) -> None:
    """Wait (in real time, bounded) until ``check()`` -- a value or an awaitable -- is true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not true within {timeout_s}s")


async def _state(scheduler: Scheduler, task_id: str) -> L:
    return (await scheduler.store.get(task_id)).lifecycle  # type: ignore[union-attr]


async def test_wait_for_a_task_another_worker_runs(any_bench: Bench) -> None:
    bench = any_bench
    worker, client = bench.scheduler("job"), bench.scheduler()
    await worker.start()
    await client.start()
    tid = await client.schedule_task("job")
    waiting = asyncio.ensure_future(client.wait_for(tid, timeout=10))
    await _until(lambda: bench.started("job"))
    assert not waiting.done()
    bench.gates["job"].set()
    assert await waiting == "job"


async def test_workers_are_listed_with_their_heartbeat(any_bench: Bench) -> None:
    bench = any_bench
    one, two, client = bench.scheduler("job"), bench.scheduler("job"), bench.scheduler()
    for scheduler in (one, two, client):
        await scheduler.start()
    workers = await client.list_workers()
    assert len(workers) == 2  # the client runs nothing: not a worker
    assert {w["status"] for w in workers} == {"live"}
    assert all(w["pid"] and w["host"] and w["version"] for w in workers)
    first_beat = workers[0]["last_heartbeat"]
    await asyncio.sleep(0.8)  # a beat every lease_s / 3
    later = {w["id"]: w for w in await client.list_workers()}
    assert later[workers[0]["id"]]["last_heartbeat"] > first_beat
    await two.stop()
    assert len(await client.list_workers()) == 1


async def test_a_worker_that_stopped_beating_reads_as_lost(bench: Bench) -> None:
    client = bench.scheduler()
    await client.start()
    old = time.time() - 60
    await client.store.register_worker(
        {"id": "gone", "host": "h", "pid": 1, "started_s": old, "heartbeat_s": old, "lease_s": 2}
    )
    (gone,) = [w for w in await client.list_workers() if w["id"] == "gone"]
    assert gone["status"] == "lost"


async def _parent_and_child(bench: Bench) -> None:
    """A parent and its child, both stored QUEUED (as a dependant is for a moment
    after it is created)."""
    store = SQLiteStore(bench.db)
    await store.open()
    now = time.time()
    parent, child = (
        Task("parent", "up", created_s=now),
        Task("child", "down", created_s=now, dependencies=("parent",)),
    )
    for task in (parent, child):
        task.transition(L.QUEUED, now, None)
    await store.insert([parent, child])
    await store.close()


async def test_a_dependant_claimed_by_another_worker_waits_and_is_released(
    bench: Bench,
) -> None:
    # The worker that claims the child must still wait for the parent, which runs
    # in the other worker.
    await _parent_and_child(bench)
    ups, downs = bench.scheduler("up"), bench.scheduler("down")
    await ups.start()
    await downs.start()
    await _until(lambda: bench.started("up"))
    await asyncio.sleep(0.5)
    assert not bench.started("down")
    assert await _state(downs, "child") is L.PAUSED
    bench.gates["down"].set()
    bench.gates["up"].set()
    assert await downs.wait_for("child", timeout=10) == "down"
    ends = {n: t for e, n, t in bench.log if e == "end"}
    starts = {n: t for e, n, t in bench.log if e == "start"}
    assert starts["down"] >= ends["up"]


async def test_a_failed_dependency_cancels_its_dependant_elsewhere(any_bench: Bench) -> None:
    bench = any_bench
    ups, downs = bench.scheduler("up"), bench.scheduler("down")
    await ups.start()
    await downs.start()
    parent = await downs.schedule_task("up", {"fail": True}, max_retries=0)
    child = await downs.schedule_task("down", dependencies=[parent])
    await _until(lambda: bench.started("up"))
    bench.gates["up"].set()

    async def cancelled() -> bool:
        return await downs.get_task_status(child) is L.CANCELLED

    await _until(cancelled)
    trail = await downs.get_audit_trail(child)
    assert any(f"dependency {parent} ended FAILED" in str(e.get("reason")) for e in trail)
    assert not bench.started("down")


async def test_a_task_paused_elsewhere_is_not_started_by_a_worker_that_had_it_armed(
    any_bench: Bench,
) -> None:
    bench = any_bench
    worker, operator = bench.scheduler("job"), bench.scheduler()
    await worker.start()
    await operator.start()
    tid = await worker.schedule_task("job", delay=0.6)  # armed in the worker's wheel
    assert await operator.pause_task(tid, "hold on") is True
    assert await _state(worker, tid) is L.PAUSED
    await asyncio.sleep(1.0)
    assert not bench.started("job")
    assert await operator.resume_task(tid) is True
    bench.gates["job"].set()
    assert await operator.wait_for(tid, timeout=10) == "job"


async def test_a_running_task_is_cancelled_from_another_scheduler(any_bench: Bench) -> None:
    bench = any_bench
    worker, operator = bench.scheduler("job"), bench.scheduler()
    await worker.start()
    await operator.start()
    tid = await operator.schedule_task("job")
    await _until(lambda: bench.started("job"))
    began = time.monotonic()
    assert await operator.cancel_task(tid, "no longer needed") is True
    assert time.monotonic() - began < 2.5  # within about a second (Redis polls every 0.5 s)
    assert await _state(worker, tid) is L.CANCELLED
    await _until(lambda: ("cancelled", "job") in {(e, n) for e, n, _ in bench.log})
    trail = await operator.get_audit_trail(tid)
    assert [e["reason"] for e in trail if e.get("action") == "cancel"] == ["no longer needed"]


async def test_pause_and_resume_reach_the_worker_holding_the_lease(bench: Bench) -> None:
    await _parent_and_child(bench)
    ups, downs, operator = bench.scheduler("up"), bench.scheduler("down"), bench.scheduler()
    for scheduler in (ups, downs, operator):
        await scheduler.start()

    async def held() -> bool:
        return await _state(operator, "child") is L.PAUSED

    await _until(held)  # held by the worker that claimed it, under its lease
    assert await operator.pause_task("child", "not yet") is True
    assert (await operator.get_task("child")).user_paused
    bench.gates["up"].set()
    bench.gates["down"].set()
    assert await operator.wait_for("parent", timeout=10) == "up"
    await asyncio.sleep(0.5)
    assert not bench.started("down")  # paused by a user: its parent's end does not free it
    assert await operator.resume_task("child") is True
    assert await operator.wait_for("child", timeout=10) == "down"
    trail = await operator.get_audit_trail("child")
    assert [e["action"] for e in trail if e.get("action") in ("pause", "resume")] == [
        "pause",
        "resume",
    ]
