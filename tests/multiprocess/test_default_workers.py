"""Plain workers on one SQLite file, no flag: they share it safely by default.

Producers insert while the workers run; no task runs twice; a SIGKILLed
worker's in-flight tasks are the only ones that may run again; the file passes
``PRAGMA integrity_check`` after every test.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

CONCURRENCY = 20

WORKER = textwrap.dedent(
    """
    import asyncio, os, sys
    from asched import Scheduler

    db, ledger, stop_file, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    scheduler = Scheduler(
        f"sqlite:///{db}", lease_s=1.0, max_concurrency=CONCURRENCY, grace_period_s=5
    )

    @scheduler.task("work", max_retries=5)
    async def work(n: int) -> int:
        await asyncio.sleep(delay)
        with open(ledger, "a") as out:
            out.write(f"{n} {os.getpid()}\\n")
        return n

    async def main() -> None:
        async with scheduler:
            while not os.path.exists(stop_file):
                await asyncio.sleep(0.05)

    asyncio.run(main())
    """
).replace("CONCURRENCY", str(CONCURRENCY))

PRODUCER = textwrap.dedent(
    """
    import asyncio, sys
    from asched import Scheduler

    db, first, count, batches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    producer = Scheduler(f"sqlite:///{db}", strict_task_types=False)

    async def main() -> None:
        async with producer:
            size = count // batches
            for b in range(batches):
                start = first + b * size
                await producer.schedule_many(
                    [{"task_type": "work", "task_data": {"n": n}, "task_id": f"t{n}"}
                     for n in range(start, start + size)])
                await asyncio.sleep(0.05)

    asyncio.run(main())
    """
)


def spawn(script: Path, *args: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env)


def states(db: Path) -> Counter[str]:
    if not db.exists():
        return Counter()
    conn = sqlite3.connect(db, timeout=10)
    try:
        return Counter(row[0] for row in conn.execute("SELECT lifecycle FROM tasks"))
    except sqlite3.OperationalError:
        return Counter()
    finally:
        conn.close()


def wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def runs(ledger: Path) -> list[tuple[int, str]]:
    return [(int(n), pid) for n, pid in (line.split() for line in ledger.read_text().splitlines())]


def assert_intact(db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def scripts(tmp_path: Path) -> tuple[Path, Path, Path, Path, Path]:
    db, ledger, stop = tmp_path / "shared.db", tmp_path / "ledger.txt", tmp_path / "stop"
    worker, producer = tmp_path / "worker.py", tmp_path / "producer.py"
    worker.write_text(WORKER)
    producer.write_text(PRODUCER)
    ledger.touch()
    return db, ledger, stop, worker, producer


@pytest.mark.parametrize("workers", [2, 3])
def test_default_workers_and_a_live_producer_run_each_task_once(
    tmp_path: Path, workers: int
) -> None:
    count = 600
    db, ledger, stop, worker, producer = scripts(tmp_path)
    assert spawn(producer, db, 0, 100, 1).wait(timeout=60) == 0  # the file exists first
    procs = [spawn(worker, db, ledger, stop, 0.01) for _ in range(workers)]
    try:
        late = spawn(producer, db, 100, count - 100, 10)  # inserts while they run
        assert late.wait(timeout=60) == 0
        wait_until(lambda: states(db)["COMPLETED"] == count, 90)
    finally:
        stop.touch()
        codes = [p.wait(timeout=30) for p in procs]
    assert codes == [0] * workers
    ran = Counter(n for n, _ in runs(ledger))
    assert set(ran) == set(range(count))
    assert max(ran.values()) == 1, "a task ran twice"
    assert len({pid for _, pid in runs(ledger)}) == workers, "every worker took part"
    assert_intact(db)


def test_a_sigkilled_worker_reruns_at_most_what_it_had_in_flight(tmp_path: Path) -> None:
    count = 2000
    db, ledger, stop, worker, producer = scripts(tmp_path)
    assert spawn(producer, db, 0, count, 4).wait(timeout=60) == 0
    victim = spawn(worker, db, ledger, stop, 0.005)
    survivor = spawn(worker, db, ledger, stop, 0.005)
    try:
        wait_until(lambda: len(runs(ledger)) >= count // 3, 60)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        wait_until(lambda: states(db)["COMPLETED"] == count, 60)
    finally:
        stop.touch()
        assert survivor.wait(timeout=30) == 0
    ran = Counter(n for n, _ in runs(ledger))
    assert set(ran) == set(range(count)), "every acknowledged task ran"
    twice = [n for n, k in ran.items() if k > 1]
    assert max(ran.values(), default=0) <= 2
    assert len(twice) <= CONCURRENCY, "only the killed worker's in-flight tasks run again"
    pids = {n: [pid for m, pid in runs(ledger) if m == n] for n in twice}
    for n in twice:
        assert pids[n][0] == str(victim.pid)
    assert_intact(db)
