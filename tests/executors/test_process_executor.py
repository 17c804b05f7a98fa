"""The process executor: through the public API, plus the pool's own guarantees."""

from __future__ import annotations

import asyncio
import functools
import importlib
import multiprocessing
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from asched import Scheduler, TaskFailedError, TaskLifecycle, TaskValidationError
from asched.errors import ProcessTaskError, WorkerCrashedError
from asched.events import Event, TaskRetrying, TaskStarted
from asched.executors import ProcessExecutor
from asched.testing import FakeClock

# Workers import handlers by name and inherit sys.path: make sure this folder is on it
# whatever pytest's import mode.
_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
ph: Any = importlib.import_module("process_handlers")

WAIT_S = 15.0  # an upper bound only


@pytest.fixture(autouse=True)
def no_worker_left_behind() -> Iterator[None]:
    yield
    alive = [p for p in multiprocessing.active_children() if p.name == "asched-process-worker"]
    assert alive == []


@dataclass
class Caller:
    """A running handler that reported to the beacon."""

    pid: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def release(self) -> None:
        self.writer.write(b"go")

    async def hung_up(self) -> None:
        """Returns once the handler's process has died (its connection closed)."""
        await asyncio.wait_for(self.reader.read(), WAIT_S)


class Beacon:
    """A local server that handlers report their pid to, so tests know a call is running."""

    def __init__(self) -> None:
        self._arrivals: asyncio.Queue[Caller] = asyncio.Queue()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Beacon:
        self._server = await asyncio.start_server(self._on_connect, "127.0.0.1", 0)
        self.port: int = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for writer in self._writers:
            writer.close()
        self._server.close()
        await self._server.wait_closed()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        pid = int(await reader.readline())
        await self._arrivals.put(Caller(pid, reader, writer))

    async def arrival(self) -> Caller:
        return await asyncio.wait_for(self._arrivals.get(), WAIT_S)


@pytest.fixture
async def beacon() -> AsyncIterator[Beacon]:
    async with Beacon() as b:
        yield b


@pytest.fixture
def scheduler(make_scheduler: Callable[..., Scheduler]) -> Scheduler:
    s = make_scheduler(process_pool_size=2)
    for name in ("add", "fail", "not_json", "exit_with", "segfault", "burn", "spin", "hold"):
        s.register(name, getattr(ph, name), executor="process", max_retries=0)
    s.register("stubborn", ph.spin_ignoring_sigterm, executor="process", max_retries=0)
    return s


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- through the scheduler --------------------------------------------------------------


async def test_arguments_and_result_cross_as_json(scheduler: Scheduler) -> None:
    async with scheduler:
        tid = await scheduler.schedule_task("add", {"a": 2, "b": 3})
        result = await scheduler.wait_for(tid, timeout=WAIT_S)
    assert result["sum"] == 5
    assert result["echo"] == [2, 3]
    assert result["pid"] != os.getpid()


async def test_an_exception_in_the_child_fails_the_attempt_and_is_retried(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    s = make_scheduler(process_pool_size=1)
    s.register("fail", ph.fail, executor="process", max_retries=2, backoff_factor=1)
    retries: asyncio.Queue[Event] = asyncio.Queue()
    started: list[Event] = []

    def listen(event: Event) -> None:
        if isinstance(event, TaskRetrying):
            retries.put_nowait(event)
        elif isinstance(event, TaskStarted):
            started.append(event)

    s.subscribe(listen)
    async with s:
        tid = await s.schedule_task("fail", {"message": "no good"})
        for _ in range(2):
            await asyncio.wait_for(retries.get(), WAIT_S)
            await clock.jump()  # to the retry's due time
        with pytest.raises(TaskFailedError, match="ProcessTaskError: ValueError: no good"):
            await s.wait_for(tid, timeout=WAIT_S)
        task = await s.get_task(tid)
    assert task.retries == 2
    assert len(started) == 3


async def test_a_result_that_is_not_json_fails_the_attempt(scheduler: Scheduler) -> None:
    async with scheduler:
        tid = await scheduler.schedule_task("not_json")
        with pytest.raises(TaskFailedError, match=r"not JSON-serializable.*set"):
            await scheduler.wait_for(tid, timeout=WAIT_S)


async def test_lambdas_and_closures_are_rejected_at_registration(scheduler: Scheduler) -> None:
    def nested() -> int:
        return 1

    with pytest.raises(TaskValidationError, match="a lambda cannot") as raised:
        scheduler.register("lambda", lambda: 1, executor="process")
    assert raised.value.field == "handler"
    with pytest.raises(TaskValidationError, match="nested function cannot"):
        scheduler.register("closure", nested, executor="process")
    assert "lambda" not in scheduler.task_types


@pytest.mark.parametrize("handler", ["spin", "stubborn"])  # stubborn ignores SIGTERM
async def test_a_timeout_kills_the_child_and_the_pool_recovers(
    scheduler: Scheduler, clock: FakeClock, beacon: Beacon, handler: str
) -> None:
    async with scheduler:
        tid = await scheduler.schedule_task(handler, {"port": beacon.port}, timeout=0.5)
        caller = await beacon.arrival()
        await clock.advance(0.5)
        with pytest.raises(TaskFailedError, match=r"timed out after 0\.5s"):
            await scheduler.wait_for(tid, timeout=WAIT_S)
        assert not alive(caller.pid)  # killed and reaped before the attempt settled
        tid = await scheduler.schedule_task("add", {"a": 1, "b": 1})
        assert (await scheduler.wait_for(tid, timeout=WAIT_S))["sum"] == 2


async def test_a_crash_fails_only_its_own_attempt(scheduler: Scheduler, beacon: Beacon) -> None:
    async with scheduler:
        survivor = await scheduler.schedule_task("hold", {"port": beacon.port, "value": 7})
        caller = await beacon.arrival()
        crashes = (("exit_with", {"code": 3}, "exit code 3"), ("segfault", {}, "signal SIGSEGV"))
        for name, data, how in crashes:
            tid = await scheduler.schedule_task(name, data)
            with pytest.raises(TaskFailedError, match=f"WorkerCrashedError: .*{name}: .*{how}"):
                await scheduler.wait_for(tid, timeout=WAIT_S)
        caller.release()
        assert await scheduler.wait_for(survivor, timeout=WAIT_S) == 7
        tid = await scheduler.schedule_task("add", {"a": 1, "b": 2})
        assert (await scheduler.wait_for(tid, timeout=WAIT_S))["sum"] == 3


async def test_cancel_task_kills_the_running_child(scheduler: Scheduler, beacon: Beacon) -> None:
    async with scheduler:
        tid = await scheduler.schedule_task("spin", {"port": beacon.port})
        caller = await beacon.arrival()
        assert await scheduler.cancel_task(tid) is True
        await caller.hung_up()
        assert await scheduler.get_task_status(tid) is TaskLifecycle.CANCELLED
        tid = await scheduler.schedule_task("add", {"a": 1, "b": 2})
        assert (await scheduler.wait_for(tid, timeout=WAIT_S))["sum"] == 3
    assert not alive(caller.pid)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
async def test_cpu_bound_tasks_run_in_parallel(scheduler: Scheduler) -> None:
    async def run_all(name: str, datas: list[dict[str, Any]]) -> tuple[float, list[Any]]:
        started = time.perf_counter()
        ids = [await scheduler.schedule_task(name, data) for data in datas]
        results = [await scheduler.wait_for(tid, timeout=WAIT_S) for tid in ids]
        return time.perf_counter() - started, results

    cores = len(os.sched_getaffinity(0))
    busy = os.getloadavg()[0] >= cores - 0.5  # other work already fills the cores
    ratios: list[float] = []
    async with scheduler:
        _, warm = await run_all("add", [{"a": 0, "b": 0}] * 2)  # both workers up
        assert warm[0]["pid"] != warm[1]["pid"]
        # Other processes on the machine can steal a core for a moment: best of three.
        while len(ratios) < 3 and (not ratios or min(ratios) >= 1.6):
            one_s, _ = await run_all("burn", [{"cpu_s": 0.4}])
            two_s, pids = await run_all("burn", [{"cpu_s": 0.4}] * 2)
            assert pids[0] != pids[1]
            ratios.append(two_s / one_s)
            print(f"one CPU task {one_s:.3f}s, two at once {two_s:.3f}s: {ratios[-1]:.2f}x")
    if min(ratios) >= 1.6 and busy:
        pytest.skip(f"the machine is busy (load {os.getloadavg()[0]:.1f} on {cores} cores)")
    assert min(ratios) < 1.6


async def test_the_loop_keeps_ticking_while_a_process_task_runs(scheduler: Scheduler) -> None:
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async with scheduler:
        ticker = asyncio.create_task(tick())
        tid = await scheduler.schedule_task("burn", {"cpu_s": 0.4})  # a cold pool: spawns too
        await scheduler.wait_for(tid, timeout=WAIT_S)
        done.set()
        await ticker
    print(f"{len(gaps)} ticks, longest gap {max(gaps) * 1000:.1f} ms")
    assert len(gaps) > 20
    assert max(gaps) < 0.2


# -- the executor on its own --------------------------------------------------------------


async def test_callers_beyond_max_workers_wait_their_turn() -> None:
    executor = ProcessExecutor(1)
    finished: list[int] = []

    async def call(n: int) -> Any:
        result = await executor.run(ph.add, {"a": n, "b": 0})
        finished.append(n)
        return result

    try:
        results = await asyncio.gather(*(call(n) for n in range(4)))
    finally:
        await executor.shutdown()
    assert finished == [0, 1, 2, 3]
    assert len({r["pid"] for r in results}) == 1


async def test_cancelled_callers_do_not_leak_workers(beacon: Beacon) -> None:
    executor = ProcessExecutor(1)
    try:
        starting = asyncio.create_task(executor.run(ph.add, {"a": 1, "b": 1}))
        await asyncio.sleep(0)  # let it begin launching the worker
        starting.cancel()
        holding = asyncio.create_task(executor.run(ph.hold, {"port": beacon.port, "value": 1}))
        caller = await beacon.arrival()
        waiting = asyncio.create_task(executor.run(ph.add, {"a": 2, "b": 2}))
        await asyncio.sleep(0)  # let it queue for the only worker
        waiting.cancel()
        caller.release()
        assert await asyncio.wait_for(holding, WAIT_S) == 1
        result = await asyncio.wait_for(executor.run(ph.add, {"a": 3, "b": 3}), WAIT_S)
        assert result["sum"] == 6
        for task in (starting, waiting):
            with pytest.raises(asyncio.CancelledError):
                await task
    finally:
        await executor.shutdown()


async def test_errors_carry_type_message_and_traceback() -> None:
    executor = ProcessExecutor(1)
    try:
        with pytest.raises(ProcessTaskError) as caught:
            await executor.run(ph.fail, {"message": "bad input"})
        with pytest.raises(WorkerCrashedError, match="exit code 5") as crashed:
            await executor.run(ph.exit_with, {"code": 5})
    finally:
        await executor.shutdown()
    assert str(caught.value) == "ValueError: bad input"
    assert caught.value.error_type == "ValueError"
    assert "in fail" in caught.value.traceback
    assert crashed.value.exitcode == 5


async def test_handlers_that_a_worker_cannot_import_are_rejected() -> None:
    executor = ProcessExecutor(1)

    def nested() -> None:
        return None

    for bad in (lambda: None, nested, functools.partial(ph.add, 1), os.getcwd.__call__):
        attempt = executor.run(bad, {})  # run() itself never raises: the engine calls it inline
        with pytest.raises(TaskValidationError, match="invalid handler="):
            await attempt
    await executor.shutdown()


async def test_shutdown_ends_every_worker_is_idempotent_and_start_reopens() -> None:
    executor = ProcessExecutor(2)
    await executor.start()
    results = await asyncio.gather(*(executor.run(ph.add, {"a": n, "b": 0}) for n in range(2)))
    pids = {r["pid"] for r in results}
    await executor.shutdown()
    await executor.shutdown()
    assert len(pids) == 2
    assert not any(alive(pid) for pid in pids)
    with pytest.raises(RuntimeError, match="shut down"):
        await executor.run(ph.add, {"a": 1, "b": 1})
    await executor.start()
    assert (await executor.run(ph.add, {"a": 1, "b": 1}))["sum"] == 2
    await executor.shutdown()


def test_spawn_start_method_and_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")
    with pytest.raises(ValueError, match="start_method"):
        ProcessExecutor(1, start_method="fork")

    async def main() -> Any:
        executor = ProcessExecutor(1, start_method="spawn")
        try:
            return await executor.run(ph.add, {"a": 4, "b": 5})
        finally:
            await executor.shutdown()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(main())["sum"] == 9
