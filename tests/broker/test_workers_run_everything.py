"""``asched run`` (on SQLite) publishes; two ``asched worker`` processes run the
tasks; every outcome is recorded in the scheduler's store."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

from broker_helpers import APP, Processes, ledger_lines, stored_states, wait_until

COUNT = 300


def _scheduler(processes: Processes, delay: float) -> subprocess.Popen[bytes]:
    processes.env.update({"COUNT": str(COUNT), "DELAY": str(delay)})
    return processes.start(
        "-m",
        "asched.cli",
        "run",
        "app:scheduler",
        "--store",
        "sqlite:///tasks.db",
        "--until-idle",
        log="scheduler.log",
    )


def _stop(*workers: subprocess.Popen[bytes]) -> list[int]:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    return [worker.wait(timeout=30) for worker in workers]


def test_two_workers_run_every_task_once_and_the_store_records_it(
    tmp_path: Path, processes: Processes
) -> None:
    (tmp_path / "app.py").write_text(APP)
    workers = [processes.worker("app:scheduler", log=f"worker{i}.log") for i in range(2)]
    # Both consume before anything is published: one worker alone clears 300
    # short tasks in a fraction of a second, before a slow-starting second joins.
    wait_until(
        lambda: all(" consuming " in (tmp_path / f"worker{i}.log").read_text() for i in range(2)),
        60,
        "both workers to consume",
    )
    listing = processes.start("-m", "asched.cli", "workers", "--listen", "6", log="workers.log")
    scheduler = _scheduler(processes, delay=0.01)
    try:
        assert scheduler.wait(timeout=90) == 0, (tmp_path / "scheduler.log").read_text()
        assert listing.wait(timeout=30) == 0
    finally:
        codes = _stop(*workers)
    assert codes == [0, 0]
    listed = (tmp_path / "workers.log").read_text()
    assert all(f" {w.pid} " in listed for w in workers), listed
    assert stored_states(tmp_path / "tasks.db") == Counter({"COMPLETED": COUNT})
    runs = ledger_lines(tmp_path / "ledger.txt")
    assert Counter(n for n, _ in runs) == Counter(range(COUNT)), "each task ran exactly once"
    pids = Counter(pid for _, pid in runs)
    assert set(pids) == {w.pid for w in workers}, "both workers ran tasks, the scheduler none"


def test_a_sigkilled_worker_loses_nothing_and_duplicates_stay_within_its_prefetch(
    tmp_path: Path, processes: Processes
) -> None:
    (tmp_path / "app.py").write_text(APP)
    prefetch = 20  # whole messages of up to 10 tasks: two of them
    options = ("--concurrency", "4", "--prefetch", str(prefetch))
    victim = processes.worker("app:scheduler", *options, log="victim.log")
    survivor = processes.worker("app:scheduler", *options, log="survivor.log")
    scheduler = _scheduler(processes, delay=0.02)
    ledger = tmp_path / "ledger.txt"
    try:
        wait_until(
            lambda: sum(pid == victim.pid for _, pid in ledger_lines(ledger)) >= 30,
            60,
            "the victim to run some tasks",
        )
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        assert len(ledger_lines(ledger)) < COUNT, "everything finished before the kill"
        assert scheduler.wait(timeout=90) == 0, (tmp_path / "scheduler.log").read_text()
    finally:
        _stop(survivor)
    assert stored_states(tmp_path / "tasks.db") == Counter({"COMPLETED": COUNT})
    runs = ledger_lines(ledger)
    assert {n for n, _ in runs} == set(range(COUNT))
    twice = {n: k for n, k in Counter(n for n, _ in runs).items() if k > 1}
    assert len(twice) <= prefetch, twice
    for n in twice:  # the victim ran it, its ack never went out, the survivor ran it again
        assert [pid for m, pid in runs if m == n] == [victim.pid, survivor.pid]


def test_a_sigkilled_scheduler_restarts_and_everything_completes(
    tmp_path: Path, processes: Processes
) -> None:
    (tmp_path / "app.py").write_text(APP)
    worker = processes.worker("app:scheduler", "--concurrency", "4", log="worker.log")
    ledger = tmp_path / "ledger.txt"
    first = _scheduler(processes, delay=0.02)
    try:
        wait_until(lambda: len(ledger_lines(ledger)) >= 40, 60, "some tasks to complete")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert len(ledger_lines(ledger)) < COUNT, "everything finished before the kill"
        processes.env["COUNT"] = "0"  # the restarted scheduler only recovers the store
        second = processes.start(
            "-m",
            "asched.cli",
            "run",
            "app:scheduler",
            "--store",
            "sqlite:///tasks.db",
            "--until-idle",
            log="restarted.log",
        )
        assert second.wait(timeout=90) == 0, (tmp_path / "restarted.log").read_text()
    finally:
        _stop(worker)
    assert stored_states(tmp_path / "tasks.db") == Counter({"COMPLETED": COUNT})
    assert {n for n, _ in ledger_lines(ledger)} == set(range(COUNT))
