"""A scheduler in this process, workers in child processes: cancel, timeouts,
signing, and a broker that drops every connection mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from broker_helpers import APP, Processes, ledger_lines
from tcp_proxy import SwitchableProxy

from asched import Scheduler, TaskLifecycle
from asched.errors import TaskFailedError
from asched.executors.distributed import DistributedExecutor


def crunch(name: str) -> str:  # the scheduler's side of the app's "crunch" handler
    raise AssertionError("runs on a broker worker, never here")


async def _slow(name: str, seconds: float = 60.0) -> str:
    raise AssertionError("runs on a broker worker, never here")


async def _work(n: int, delay: float = 0.0) -> int:
    raise AssertionError("runs on a broker worker, never here")


def _boom(why: str) -> None:
    raise AssertionError("runs on a broker worker, never here")


@pytest.fixture
async def make_remote(
    tmp_path: Path, broker_url: str, broker_prefix: str
) -> AsyncIterator[Callable[..., Scheduler]]:
    (tmp_path / "app.py").write_text(APP)
    made: list[Scheduler] = []

    def make(**settings: Any) -> Scheduler:
        settings.setdefault("broker", broker_url)
        scheduler = Scheduler(broker_prefix=broker_prefix, **settings)
        scheduler.register("work", _work, executor="distributed", max_retries=5)
        scheduler.register("slow", _slow, executor="distributed", max_retries=0)
        scheduler.register("boom", _boom, executor="distributed", backoff_factor=1)
        scheduler.register("crunch", crunch, executor="distributed-process", max_retries=0)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        await scheduler.stop(grace_s=0)


async def _until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        await asyncio.sleep(0.05)


def _marks(tmp_path: Path) -> list[str]:
    marks = tmp_path / "marks.txt"
    return marks.read_text().splitlines() if marks.exists() else []


def _stop(worker: subprocess.Popen[bytes]) -> int:
    worker.terminate()
    return worker.wait(timeout=30)


async def test_cancel_stops_a_running_remote_task_and_drops_a_queued_one(
    tmp_path: Path, processes: Processes, make_remote: Callable[..., Scheduler]
) -> None:
    worker = processes.worker("app:scheduler", "--concurrency", "1", "--prefetch", "1", log="w.log")
    async with make_remote() as scheduler:
        running = await scheduler.schedule_task("slow", {"name": "first"})
        await _until(lambda: "started first" in _marks(tmp_path), 30, "the first task to start")
        # The worker's one message of prefetch is taken: this one waits in RabbitMQ.
        queued = await scheduler.schedule_task("slow", {"name": "second"})
        assert await scheduler.cancel_task(queued) is True
        assert await scheduler.cancel_task(running) is True
        assert await scheduler.get_task_status(running) is TaskLifecycle.CANCELLED
        await _until(lambda: "cancelled first" in _marks(tmp_path), 15, "the worker to cancel")
        # The second message reaches the worker only now, and is dropped unrun.
        done = await scheduler.schedule_task("work", {"n": 7})
        assert await scheduler.wait_for(done, timeout=30) == 7
    assert _stop(worker) == 0
    assert "started second" not in _marks(tmp_path)


async def test_cancel_kills_the_process_executor_child_on_the_worker(
    tmp_path: Path, processes: Processes, make_remote: Callable[..., Scheduler]
) -> None:
    worker = processes.worker("app:scheduler", log="w.log")
    async with make_remote() as scheduler:
        task_id = await scheduler.schedule_task("crunch", {"name": "render"})
        await _until(lambda: _marks(tmp_path), 60, "the child process to start")
        child_pid = int(_marks(tmp_path)[0].split()[-1])
        assert await scheduler.cancel_task(task_id) is True
        await _until(lambda: not _alive(child_pid), 15, "the child to be killed")
    assert _stop(worker) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead too
        return stat.read().split()[2] != "Z"


async def test_a_worker_enforces_the_timeout_and_the_scheduler_records_the_failure(
    processes: Processes, make_remote: Callable[..., Scheduler]
) -> None:
    worker = processes.worker("app:scheduler", log="w.log")
    async with make_remote() as scheduler:
        task_id = await scheduler.schedule_task("slow", {"name": "late"}, timeout=0.3)
        with pytest.raises(TaskFailedError, match=r"timed out after 0\.3s"):
            await scheduler.wait_for(task_id, timeout=30)
    assert _stop(worker) == 0


async def test_a_failure_on_the_worker_is_retried_by_the_task_policy(
    tmp_path: Path, processes: Processes, make_remote: Callable[..., Scheduler]
) -> None:
    worker = processes.worker("app:scheduler", log="w.log")
    async with make_remote() as scheduler:
        task_id = await scheduler.schedule_task("boom", {"why": "no disk"}, max_retries=2)
        with pytest.raises(TaskFailedError, match="ValueError: no disk"):
            await scheduler.wait_for(task_id, timeout=30)
        task = await scheduler.get_task(task_id)
    assert task.retries == 2
    assert _marks(tmp_path) == [f"boom {worker.pid}"] * 3
    assert _stop(worker) == 0


async def test_an_attempt_whose_worker_goes_silent_counts_as_lost_and_is_retried(
    tmp_path: Path, processes: Processes, make_remote: Callable[..., Scheduler]
) -> None:
    frozen = processes.worker("app:scheduler", "--prefetch", "1", log="frozen.log")
    async with make_remote(broker_report_grace_s=0.5) as scheduler:
        task_id = await scheduler.schedule_task(
            "slow", {"name": "x", "seconds": 0.3}, timeout=1.0, max_retries=1, backoff_factor=1
        )
        remote = scheduler._engine.attempts.executors["distributed"]
        assert isinstance(remote, DistributedExecutor)
        await _until(lambda: remote.held_by(task_id), 30, "the first attempt to start")
        frozen.send_signal(signal.SIGSTOP)  # alive, connected, and silent
        try:
            spare = processes.worker("app:scheduler", log="spare.log")
            assert await scheduler.wait_for(task_id, timeout=30) == "x"
        finally:
            frozen.send_signal(signal.SIGCONT)
        task = await scheduler.get_task(task_id)
    assert task.retries == 1
    assert any("timed out" in (t.reason or "") for t in task.history)
    assert _marks(tmp_path).count("started x") == 2
    assert _stop(spare) == 0
    assert _stop(frozen) == 0


async def test_workers_with_a_secret_drop_unsigned_tasks_and_run_signed_ones(
    tmp_path: Path, processes: Processes, make_remote: Callable[..., Scheduler]
) -> None:
    processes.env["ASCHED_BROKER_SECRET"] = "s3cret"
    worker = processes.worker("app:scheduler", log="w.log")
    async with make_remote(broker_secret="s3cret") as signed:
        task_id = await signed.schedule_task("work", {"n": 1})
        assert await signed.wait_for(task_id, timeout=30) == 1
    async with make_remote(grace_period_s=0.1) as unsigned:
        forged = await unsigned.schedule_task("work", {"n": 2})
        await _until(
            lambda: "unsigned" in (tmp_path / "w.log").read_text(), 15, "the worker to drop it"
        )
        assert await unsigned.get_task_status(forged) is TaskLifecycle.RUNNING
    assert _stop(worker) == 0
    assert [n for n, _ in ledger_lines(tmp_path / "ledger.txt")] == [1]
    assert "s3cret" not in (tmp_path / "w.log").read_text()


async def test_closing_every_broker_connection_mid_run_loses_nothing(
    tmp_path: Path, processes: Processes, make_remote: Callable[..., Scheduler]
) -> None:
    count = 300
    worker = processes.worker("app:scheduler", "--concurrency", "8", log="w.log")
    ledger = tmp_path / "ledger.txt"
    async with make_remote(store=f"sqlite:///{tmp_path / 'tasks.db'}") as scheduler:
        ids = await scheduler.schedule_many(
            [{"task_type": "work", "task_data": {"n": n, "delay": 0.02}} for n in range(count)]
        )
        await _until(lambda: len(ledger_lines(ledger)) >= 40, 30, "some tasks to run")
        await asyncio.to_thread(_close_all_connections)
        results = [await scheduler.wait_for(task_id, timeout=60) for task_id in ids]
    assert results == list(range(count))
    assert _stop(worker) == 0
    assert {n for n, _ in ledger_lines(ledger)} == set(range(count))
    assert "reconnected to the broker" in (tmp_path / "w.log").read_text()


def _close_all_connections() -> None:
    subprocess.run(
        ["rabbitmqctl", "close_all_connections", "asched broker outage test"],
        check=True,
        capture_output=True,
        timeout=60,
    )


async def test_a_scheduler_cut_off_from_the_broker_holds_due_tasks_then_sends_them(
    tmp_path: Path, processes: Processes, make_remote: Callable[..., Scheduler]
) -> None:
    proxy = SwitchableProxy()
    await proxy.start()
    worker = processes.worker("app:scheduler", log="w.log")
    try:
        async with make_remote(broker=f"amqp://guest:guest@127.0.0.1:{proxy.port}/") as scheduler:
            remote = scheduler._engine.attempts.executors["distributed"]
            assert isinstance(remote, DistributedExecutor)
            assert await remote.wait_connected(30)
            proxy.cut()
            await _until(lambda: not remote.connected, 10, "the scheduler to notice")
            ids = await scheduler.schedule_many(
                [{"task_type": "work", "task_data": {"n": n}} for n in range(50)]
            )
            await asyncio.sleep(0)  # one loop turn: the dispatcher looks at them
            for task_id in ids:
                task = await scheduler.get_task(task_id)
                assert task.lifecycle is TaskLifecycle.SCHEDULED
                assert task.wait_reason == "broker unavailable"
            proxy.restore()
            results = [await scheduler.wait_for(task_id, timeout=60) for task_id in ids]
    finally:
        await proxy.close()
    assert results == list(range(50))
    assert _stop(worker) == 0


async def test_a_stopping_worker_finishes_its_tasks_and_a_second_signal_hands_them_on(
    tmp_path: Path, processes: Processes, make_remote: Callable[..., Scheduler]
) -> None:
    async with make_remote() as scheduler:
        remote = scheduler._engine.attempts.executors["distributed"]
        assert isinstance(remote, DistributedExecutor)
        first = processes.worker("app:scheduler", log="first.log")
        short = await scheduler.schedule_task("slow", {"name": "short", "seconds": 1.0})
        await _until(lambda: remote.held_by(short), 30, "the short task to start")
        first.terminate()  # drains: the task it holds still finishes
        assert await scheduler.wait_for(short, timeout=30) == "short"
        assert first.wait(timeout=30) == 0

        second = processes.worker("app:scheduler", log="second.log")
        long = await scheduler.schedule_task("slow", {"name": "long", "seconds": 60.0})
        await _until(lambda: remote.held_by(long), 30, "the long task to start")
        second.terminate()
        await _until(lambda: "draining" in (tmp_path / "second.log").read_text(), 10, "a drain")
        second.terminate()  # the second signal: cancel now, leave the message unacked
        assert second.wait(timeout=10) == 0
        third = processes.worker("app:scheduler", log="third.log")
        await _until(lambda: _marks(tmp_path).count("started long") == 2, 30, "a redelivery")
        # Cancelled right away: the scheduler may not know yet that it moved to `third`.
        assert await scheduler.cancel_task(long) is True
        # `second` cancelled its run when told to hurry; `third` now cancels its own.
        await _until(
            lambda: _marks(tmp_path).count("cancelled long") == 2, 15, "the new holder to cancel"
        )
    assert _stop(third) == 0
