"""Workers that die or stall, with real processes on one SQLite file.

- A handler that kills its own process is counted before it runs: after
  ``max_retries`` such deaths the task ends FAILED, "worker died during N attempts".
- A handler that blocks the loop past the lease does not get its task run again:
  a thread keeps the lease alive while the loop is only busy, not dead.
- Workers killed at random points of their cycle lose nothing: every task ends
  COMPLETED with its lost attempts counted, and a task runs twice only when the
  kill fell between its handler's end and the save of its result.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from asched.model import Task
from asched.model.codec import decode_stored

WORKER = textwrap.dedent(
    """
    import asyncio, os, signal, sys, time
    from asched import Scheduler

    db, ledger, stop_file, mode = sys.argv[1:5]
    scheduler = Scheduler(f"sqlite:///{db}", lease_s=float(sys.argv[5]),
                          poll_interval_s=0.05, max_concurrency=4, grace_period_s=2)

    def note(*words):
        with open(ledger, "a") as out:
            out.write(" ".join(map(str, (*words, os.getpid()))) + "\\n")

    @scheduler.task("poison", max_retries=1)
    async def poison() -> None:
        note("start", 0)
        os.kill(os.getpid(), signal.SIGKILL)

    @scheduler.task("hog", max_retries=0)
    async def hog() -> str:
        note("start", 0)
        time.sleep(2.5)  # blocks the loop for longer than the lease
        note("end", 0)
        return "done"

    @scheduler.task("work", max_retries=30)
    async def work(n: int, pause: float) -> int:
        note("start", n)
        await asyncio.sleep(pause)
        note("end", n)
        return n

    async def main() -> None:
        async with scheduler:
            if mode == "produce":
                await scheduler.schedule_many(
                    [{"task_type": "work", "task_data": {"n": n, "pause": (n % 7) / 200},
                      "task_id": f"w{n}"} for n in range(int(sys.argv[6]))])
            elif mode != "work":
                await scheduler.schedule_task(mode, task_id=mode)
            while not os.path.exists(stop_file):
                await asyncio.sleep(0.05)

    asyncio.run(main())
    """
)


def spawn(script: Path, *args: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.Popen(
        [sys.executable, str(script), *map(str, args)], env=env, stderr=subprocess.DEVNULL
    )


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def record(db: Path, task_id: str) -> dict[str, object]:
    found = rows(db, f"SELECT record, lifecycle FROM tasks WHERE id = '{task_id}'")
    if not found:
        return {}
    value = decode_stored(str(found[0][0]), None, None, Task).to_dict()
    value["lifecycle"] = found[0][1]
    return value


def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def notes(ledger: Path) -> list[tuple[str, int, int]]:
    lines = ledger.read_text().splitlines() if ledger.exists() else []
    return [(kind, int(n), int(pid)) for kind, n, pid in (line.split() for line in lines)]


def gone_or_failed(db: Path, worker: subprocess.Popen[bytes]) -> bool:
    return worker.poll() is not None or record(db, "poison").get("lifecycle") == "FAILED"


def setup(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return tmp_path / "w.db", tmp_path / "ledger.txt", tmp_path / "stop", script


def assert_intact(db: Path) -> None:
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]


def test_a_task_that_kills_its_worker_fails_after_max_retries_deaths(tmp_path: Path) -> None:
    db, ledger, stop, script = setup(tmp_path)
    first = spawn(script, db, ledger, stop, "poison", 0.5)
    assert first.wait(timeout=30) == -signal.SIGKILL  # its own task killed it
    for _ in range(5):
        if record(db, "poison").get("lifecycle") == "FAILED":
            break
        worker = spawn(script, db, ledger, stop, "work", 0.5)  # takes the task over
        try:
            wait_until(lambda w=worker: gone_or_failed(db, w), 30)
        finally:
            worker.kill()
            worker.wait()
    task = record(db, "poison")
    assert task["lifecycle"] == "FAILED"
    assert task["error"] == "worker died during 2 attempts"
    starts = [n for kind, n, _ in notes(ledger) if kind == "start"]
    assert len(starts) == 2, "max_retries=1: one retry after the first death, then no more"
    assert_intact(db)


def test_a_loop_blocked_past_its_lease_keeps_the_task(tmp_path: Path) -> None:
    db, ledger, stop, script = setup(tmp_path)
    owner = spawn(script, db, ledger, stop, "hog", 1.0)
    other = None
    try:
        wait_until(lambda: any(kind == "start" for kind, _, _ in notes(ledger)), 30)
        other = spawn(script, db, ledger, stop, "work", 1.0)
        wait_until(lambda: record(db, "hog").get("lifecycle") == "COMPLETED", 30)
        time.sleep(1.5)  # give the other worker every chance to take it over wrongly
    finally:
        stop.touch()
        for proc in (owner, other):
            if proc is not None:
                assert proc.wait(timeout=30) == 0
    assert [kind for kind, _, _ in notes(ledger)] == ["start", "end"]
    task = record(db, "hog")
    assert task["retries"] == 0
    assert_intact(db)


def test_workers_killed_at_random_points_lose_nothing_and_count_every_attempt(
    tmp_path: Path,
) -> None:
    count = 120
    rng = random.Random(7)
    db, ledger, stop, script = setup(tmp_path)
    killed: set[int] = set()
    producer = spawn(script, db, ledger, stop, "produce", 0.5, count)
    procs = [producer]
    wait_until(lambda: len(rows(db, "SELECT id FROM tasks")) == count, 30)
    for _ in range(10):
        victim = spawn(script, db, ledger, stop, "work", 0.5)
        procs.append(victim)
        time.sleep(rng.uniform(0.3, 1.2))  # anywhere in its cycle: claim, handler, save
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed.add(victim.pid)
    producer.send_signal(signal.SIGKILL)
    producer.wait()
    killed.add(producer.pid)
    finisher = spawn(script, db, ledger, stop, "work", 0.5)
    try:
        wait_until(
            lambda: (
                rows(db, "SELECT count(*) FROM tasks WHERE lifecycle = 'COMPLETED'") == [(count,)]
            ),
            90,
        )
    finally:
        stop.touch()
        assert finisher.wait(timeout=30) == 0
    log = notes(ledger)
    starts = Counter(n for kind, n, _ in log if kind == "start")
    ends: dict[int, list[int]] = {}
    for kind, n, pid in log:
        if kind == "end":
            ends.setdefault(n, []).append(pid)
    assert set(ends) == set(range(count))
    for n in range(count):
        task = record(db, f"w{n}")
        assert task["lifecycle"] == "COMPLETED"
        retries = task["retries"]
        assert isinstance(retries, int) and retries >= starts[n] - 1, (n, retries, starts[n])
        # Every finished run but the last was in a worker killed before it saved.
        assert all(pid in killed for pid in ends[n][:-1]), (n, ends[n])
        assert ends[n].count(finisher.pid) <= 1
    assert_intact(db)
