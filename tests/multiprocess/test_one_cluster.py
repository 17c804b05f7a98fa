"""Two default workers on one SQLite file act as one cluster: a schedule created
(and paused) by a third process fires on them once per tick, ``asched cancel``
stops a task running on either, a dependency that ran on one releases its
dependant wherever it is held, and ``asched workers`` lists both -- live, or lost
while one is frozen."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

WORKER = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from asched import Scheduler

    db, ledger, stop_file = sys.argv[1], sys.argv[2], sys.argv[3]
    scheduler = Scheduler(f"sqlite:///{db}", lease_s=1.5, grace_period_s=2)

    def note(*words):
        with open(ledger, "a") as out:
            out.write(" ".join(map(str, words)) + "\\n")

    @scheduler.task("tick")
    async def tick() -> None:
        note("tick", os.getpid(), f"{time.time():.3f}")

    @scheduler.task("slow")
    async def slow() -> None:
        note("slow-start", os.getpid())
        try:
            await asyncio.sleep(120)
        except asyncio.CancelledError:
            note("slow-cancelled", os.getpid())
            raise

    @scheduler.task("step")
    async def step(name: str) -> None:
        note("step-start", name, os.getpid(), f"{time.time():.3f}")
        await asyncio.sleep(0.3)
        note("step-end", name, os.getpid(), f"{time.time():.3f}")

    @scheduler.task("boom", max_retries=0)
    async def boom() -> None:
        raise RuntimeError("boom")

    async def main() -> None:
        async with scheduler:
            note("up", os.getpid())
            while not os.path.exists(stop_file):
                await asyncio.sleep(0.05)

    asyncio.run(main())
    """
)

# A process with no handlers: it changes the store and leaves.
CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    from asched import Scheduler

    db, action = sys.argv[1], sys.argv[2]
    client = Scheduler(f"sqlite:///{db}", strict_task_types=False)

    async def main() -> None:
        async with client:
            if action == "schedule":
                await client.schedule_recurring(
                    "tick", cron="* * * * * *", timezone="UTC", schedule_id="live")
            elif action == "interval":
                await client.schedule_recurring("tick", interval=1, schedule_id="every")
            elif action == "pause":
                assert await client.pause_schedule("live")
            elif action == "slow":
                await client.schedule_task("slow", task_id="long-1")
            elif action == "chains":
                for n in range(4):
                    await client.schedule_task("step", {"name": f"a{n}"}, task_id=f"a{n}",
                                               delay=0.2 * n)
                    await client.schedule_task("step", {"name": f"b{n}"}, task_id=f"b{n}",
                                               dependencies=[f"a{n}"])
                await client.schedule_task("boom", task_id="c0", delay=0.3, max_retries=0)
                await client.schedule_task("step", {"name": "d0"}, task_id="d0",
                                           dependencies=["c0"])

    asyncio.run(main())
    """
)


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "bot.db"
        self.ledger = root / "ledger.txt"
        self.stop_file = root / "stop"
        (root / "worker.py").write_text(WORKER)
        (root / "client.py").write_text(CLIENT)
        self.env = {**os.environ, "PYTHONPATH": os.getcwd()}
        self.workers: list[subprocess.Popen[bytes]] = []

    def start(self, count: int) -> None:
        for _ in range(count):
            self.workers.append(self._spawn("worker.py", self.db, self.ledger, self.stop_file))
        self.until(lambda: len(self.lines("up")) == count, 30, "workers started")

    def _spawn(self, script: str, *args: object) -> subprocess.Popen[bytes]:
        argv = [sys.executable, str(self.root / script), *map(str, args)]
        return subprocess.Popen(argv, env=self.env)

    def client(self, action: str) -> None:
        assert self._spawn("client.py", self.db, action).wait(timeout=30) == 0

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "asched", *args, "--store", f"sqlite:///{self.db}"]
        return subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60)

    def audit(self, task_id: str) -> list[dict[str, Any]]:
        out = self.cli("audit", task_id, "--json").stdout
        return [orjson.loads(line) for line in out.splitlines() if line.strip()]

    def lines(self, head: str) -> list[list[str]]:
        if not self.ledger.exists():
            return []
        rows = [line.split() for line in self.ledger.read_text().splitlines()]
        return [row[1:] for row in rows if row and row[0] == head]

    def state(self, task_id: str) -> str | None:
        with sqlite3.connect(self.db) as db:
            row = db.execute("SELECT lifecycle FROM tasks WHERE id = ?", (task_id,)).fetchone()
        db.close()
        return None if row is None else str(row[0])

    def until(self, ok: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ok():
            assert time.monotonic() < deadline, f"timed out waiting for: {what}"
            time.sleep(0.05)

    def stop(self) -> None:
        self.stop_file.touch()
        for worker in self.workers:
            if worker.poll() is None:
                os.kill(worker.pid, signal.SIGCONT)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        if self.db.exists():
            with sqlite3.connect(self.db) as db:
                assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            db.close()


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    made = Cluster(tmp_path)
    made.start(getattr(request, "param", 2))
    try:
        yield made
    finally:
        made.stop()
    assert all(w.returncode == 0 for w in made.workers)


@pytest.mark.parametrize("cluster", [2, 3], indirect=True, ids=["two", "three"])
def test_a_schedule_made_and_paused_elsewhere_fires_once_per_tick(cluster: Cluster) -> None:
    cluster.client("schedule")
    made_s = time.time()
    cluster.until(lambda: len(cluster.lines("tick")) >= 5, 15, "five ticks")
    cluster.client("pause")
    paused_s = time.time()
    time.sleep(2.5)
    ticks = cluster.lines("tick")
    first_s = min(float(at) for _, at in ticks)
    assert first_s - made_s < 2.5  # seen live: within about a second of the next tick
    per_second = Counter(int(float(at)) for _, at in ticks)
    assert max(per_second.values()) == 1, f"a tick ran twice: {per_second}"
    late = [float(at) for _, at in ticks if float(at) > paused_s + 1.5]
    assert late == [], "the pause did not reach the workers"


def test_an_interval_schedule_declared_twice_keeps_one_phase(cluster: Cluster) -> None:
    cluster.client("interval")
    time.sleep(0.4)  # the second declaration's "now" is later
    cluster.client("interval")
    cluster.until(lambda: len(cluster.lines("tick")) >= 4, 15, "four ticks")
    with sqlite3.connect(cluster.db) as db:
        (text,) = db.execute("SELECT record FROM schedules WHERE id = 'every'").fetchone()
    db.close()
    assert orjson.loads(text)["revision"] == 1  # the second call changed nothing
    times = sorted(float(at) for _, at in cluster.lines("tick"))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) > 0.7, f"fired twice per period: {times}"


def test_asched_cancel_stops_a_task_running_on_another_worker(cluster: Cluster) -> None:
    cluster.client("slow")
    cluster.until(lambda: bool(cluster.lines("slow-start")), 15, "the slow task started")
    (runner,) = {pid for (pid,) in cluster.lines("slow-start")}
    began = time.monotonic()
    done = cluster.cli("cancel", "long-1", "--reason", "enough")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - began < 8
    cluster.until(lambda: bool(cluster.lines("slow-cancelled")), 5, "the handler was cancelled")
    assert cluster.lines("slow-cancelled") == [[runner]]
    assert cluster.state("long-1") == "CANCELLED"
    audit = cluster.audit("long-1")
    asked = [e for e in audit if e.get("action") == "cancel"]
    assert asked and "asched cancel" in asked[0]["by"] and asked[0]["reason"] == "enough"
    # Both workers carry on: more work runs and completes.
    cluster.client("chains")
    cluster.until(lambda: cluster.state("b3") == "COMPLETED", 20, "later work ran")
    assert all(w.poll() is None for w in cluster.workers)


def test_dependencies_hold_across_workers(cluster: Cluster) -> None:
    cluster.client("chains")
    cluster.until(
        lambda: all(cluster.state(f"b{n}") == "COMPLETED" for n in range(4)), 20, "chains"
    )
    cluster.until(lambda: cluster.state("d0") == "CANCELLED", 10, "d0 cancelled")
    starts = {name: float(at) for name, _, at in cluster.lines("step-start")}
    ends = {name: float(at) for name, _, at in cluster.lines("step-end")}
    for n in range(4):
        assert starts[f"b{n}"] >= ends[f"a{n}"], f"b{n} started before a{n} ended"
    assert "d0" not in starts
    audit = cluster.audit("d0")
    assert any("dependency c0 ended FAILED" in str(e.get("reason")) for e in audit)
    counts = Counter(name for name, _, _ in cluster.lines("step-start"))
    assert set(counts.values()) == {1}, f"a step ran twice: {counts}"


def test_asched_workers_lists_both_and_a_frozen_one_as_lost(cluster: Cluster) -> None:
    listed = cluster.cli("workers")
    assert listed.returncode == 0, listed.stderr
    for worker in cluster.workers:
        (row,) = [line for line in listed.stdout.splitlines() if f" {worker.pid} " in line]
        assert " live " in row
    assert "2 live, 0 lost" in listed.stdout
    frozen = cluster.workers[0]
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        time.sleep(2.5)  # longer than its lease
        listed = cluster.cli("workers")
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    (row,) = [line for line in listed.stdout.splitlines() if f" {frozen.pid} " in line]
    assert " lost " in row and "1 live, 1 lost" in listed.stdout
    cluster.until(lambda: "2 live" in cluster.cli("workers").stdout, 10, "it beats again")
