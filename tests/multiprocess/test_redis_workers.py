"""Worker processes on one Redis (shared_store=True) under failure: a SIGKILLed worker,
a Redis restart, a worker stopped past its lease, and two schedulers sharing a cron."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import orjson
import redis
from redis_service import RedisService

WORKER = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from asched import Scheduler

    url, ledger, stop_file = sys.argv[1], sys.argv[2], sys.argv[3]
    delay, lease_s = float(sys.argv[4]), float(sys.argv[5])
    scheduler = Scheduler(url, shared_store=True, lease_s=lease_s, poll_interval_s=0.05,
                          max_concurrency=20, grace_period_s=5)

    def note(line: str) -> None:
        with open(ledger, "a") as out:
            out.write(line + "\\n")

    @scheduler.task("work", max_retries=5)
    async def work(n: int) -> int:
        note(f"start {n} {os.getpid()}")
        await asyncio.sleep(delay)
        note(f"end {n} {os.getpid()}")
        return os.getpid()

    async def main() -> None:
        async with scheduler:
            while not os.path.exists(stop_file):
                await asyncio.sleep(0.05)

    asyncio.run(main())
    """
)

PRODUCER = textwrap.dedent(
    """
    import asyncio, sys
    from asched import Scheduler

    url, count, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    producer = Scheduler(url, strict_task_types=False, shared_store=True)

    async def main() -> None:
        async with producer:
            await producer.schedule_many(
                [{"task_type": "work", "task_data": {"n": n}, "task_id": f"t{n}", "delay": delay}
                 for n in range(count)])

    asyncio.run(main())
    """
)


class Cluster:
    """Scripts, a ledger and a stop file in a temp dir, processes on one Redis prefix."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.url = url
        self.prefix = "{" + url.rsplit("prefix=", 1)[1] + "}"
        self.port = int(url.split(":")[2].split("/")[0])
        self.ledger, self.stop = tmp_path / "ledger.txt", tmp_path / "stop"
        self.ledger.touch()
        self.worker, self.producer = tmp_path / "worker.py", tmp_path / "producer.py"
        self.worker.write_text(WORKER)
        self.producer.write_text(PRODUCER)
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self, script: Path, *args: object) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        process = subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env)
        self.processes.append(process)
        return process

    def produce(self, count: int, due_in_s: float) -> None:
        assert self.spawn(self.producer, self.url, count, due_in_s).wait(timeout=60) == 0

    def start_worker(self, delay_s: float, lease_s: float) -> subprocess.Popen[bytes]:
        return self.spawn(self.worker, self.url, self.ledger, self.stop, delay_s, lease_s)

    def finish(self) -> list[int | None]:
        self.stop.touch()
        codes = []
        for process in self.processes:
            if process.poll() is None or process.returncode is not None:
                try:
                    codes.append(process.wait(timeout=30))
                except subprocess.TimeoutExpired:
                    process.kill()
                    codes.append(None)
        return codes

    def lines(self, kind: str) -> list[tuple[int, int]]:
        found = []
        for line in self.ledger.read_text().splitlines():
            what, n, pid = line.split()
            if what == kind:
                found.append((int(n), int(pid)))
        return found

    def completed(self) -> int:
        with redis.Redis(port=self.port) as client:
            return int(client.zcard(f"{self.prefix}:s:COMPLETED"))

    def record(self, task_id: str) -> dict[str, object]:
        """The task's record (its state) with its result, which is kept apart."""
        with redis.Redis(port=self.port) as client:
            raw, result = client.hmget(f"{self.prefix}:t:{task_id}", "r", "R")
        assert raw is not None
        record: dict[str, object] = orjson.loads(raw)
        record["result"] = None if result is None else orjson.loads(result)
        return record


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``condition`` until it holds; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() < start + timeout_s:
        if condition():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s}s: {what}")


def test_a_sigkilled_workers_tasks_are_rerun_by_the_other_within_the_lease(
    tmp_path: Path, redis_url: str
) -> None:
    cluster = Cluster(tmp_path, redis_url)
    count, lease_s = 300, 1.0
    cluster.produce(count, due_in_s=1.5)
    try:
        victim = cluster.start_worker(0.2, lease_s)
        wait_until(lambda: len(cluster.lines("end")) >= 20, 30, "the first worker runs tasks")
        survivor = cluster.start_worker(0.2, lease_s)

        def victim_busy() -> bool:
            mine = [(n, p) for n, p in cluster.lines("start") if p == victim.pid]
            return (
                len(cluster.lines("end")) >= 60 and set(mine) - set(cluster.lines("end")) != set()
            )

        wait_until(victim_busy, 30, "work goes on, some of it in the first worker")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        killed_at = time.monotonic()
        wait_until(lambda: cluster.completed() == count, 60, "every task completed")
        took_s = time.monotonic() - killed_at
    finally:
        codes = cluster.finish()
    assert codes[-1] == 0 and survivor.returncode == 0
    ends = Counter(n for n, _ in cluster.lines("end"))
    assert set(ends) == set(range(count))
    # A task ends twice only when the killed worker ran it and died before saving that.
    killed_runs = {n for n, pid in cluster.lines("end") if pid == victim.pid}
    assert {n for n, times in ends.items() if times > 1} <= killed_runs
    started_by_victim = {n for n, pid in cluster.lines("start") if pid == victim.pid}
    unfinished = started_by_victim - killed_runs
    assert unfinished, "the worker was killed with tasks running"
    assert took_s < 30, took_s


def test_nothing_acknowledged_is_lost_when_redis_restarts(tmp_path: Path) -> None:
    service = RedisService(tmp_path / "redis")  # AOF, appendfsync always
    service.start()
    cluster = Cluster(tmp_path, f"{service.url}?prefix=app")
    count = 300
    try:
        cluster.produce(count, due_in_s=1.0)  # acknowledged: the producer exited 0
        worker = cluster.start_worker(0.02, 2.0)
        wait_until(lambda: len(cluster.lines("end")) >= 50, 30, "the worker runs tasks")
        service.restart()
        wait_until(lambda: cluster.completed() == count, 90, "every task completed")
    finally:
        codes = cluster.finish()
        service.stop()
    assert codes == [0, 0], codes
    assert worker.returncode == 0
    assert {n for n, _ in cluster.lines("end")} == set(range(count))


def test_a_worker_stopped_past_its_lease_cannot_complete_late(
    tmp_path: Path, redis_url: str
) -> None:
    cluster = Cluster(tmp_path, redis_url)
    cluster.produce(1, due_in_s=1.0)
    try:
        stalled = cluster.start_worker(3.0, 1.0)
        wait_until(lambda: cluster.lines("start") != [], 30, "the first worker starts it")
        stalled.send_signal(signal.SIGSTOP)
        # Its handler sleeps 3 s: resumed after that, it finishes at once, late.
        overdue_at = time.monotonic() + 3.5
        assert cluster.lines("end") == [], "the worker finished before it was stopped"
        rescuer = cluster.start_worker(0.5, 1.0)
        wait_until(lambda: cluster.completed() == 1, 30, "the second worker completes it")
        wait_until(lambda: time.monotonic() > overdue_at, 5, "the stalled handler is overdue")
        stalled.send_signal(signal.SIGCONT)
        wait_until(
            lambda: (0, stalled.pid) in cluster.lines("end"), 30, "the stalled worker finishes"
        )
    finally:
        stalled.send_signal(signal.SIGCONT)
        codes = cluster.finish()
    assert codes == [0, 0, 0], codes
    record = cluster.record("t0")
    assert record["lifecycle"] == "COMPLETED"
    assert record["result"] == rescuer.pid, "the late completion overwrote the rescuer's"
    assert [pid for _, pid in cluster.lines("end")] == [rescuer.pid, stalled.pid]


CRON_CHILD = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from asched import Scheduler

    url, ledger, end = sys.argv[1], sys.argv[2], float(sys.argv[3])
    scheduler = Scheduler(url)

    @scheduler.task("tick")
    async def tick() -> None:
        with open(ledger, "a") as out:
            out.write(f"{os.getpid()} {time.time():.3f}\\n")

    async def main() -> None:
        async with scheduler:
            await scheduler.schedule_recurring("tick", cron="* * * * * *", timezone="UTC",
                                               schedule_id="every-second")
            await asyncio.sleep(max(0.0, end - time.time()))

    asyncio.run(main())
    """
)


def test_two_schedulers_make_one_task_per_cron_tick(tmp_path: Path, redis_url: str) -> None:
    duration_s = 12
    ledger, script = tmp_path / "ticks.txt", tmp_path / "cron.py"
    script.write_text(CRON_CHILD)
    ledger.touch()
    end = time.time() + duration_s
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    children = [
        subprocess.Popen([sys.executable, str(script), redis_url, str(ledger), str(end)], env=env)
        for _ in range(2)
    ]
    for child in children:
        assert child.wait(timeout=duration_s + 25) == 0
    runs = [line.split() for line in ledger.read_text().splitlines()]
    seconds = Counter(int(float(at)) for _, at in runs)
    assert seconds and max(seconds.values()) == 1, "a tick ran twice"
    prefix = "{" + redis_url.rsplit("prefix=", 1)[1] + "}"
    with redis.Redis(port=int(redis_url.split(":")[2].split("/")[0])) as client:
        ids = [
            k.decode().split(":t:", 1)[1] for k in client.scan_iter(f"{prefix}:t:every-second@*")
        ]
        states = [client.hget(f"{prefix}:t:{i}", "s") for i in ids]
    assert len(ids) == len(set(ids))
    assert states.count(b"COMPLETED") == len(runs)
    assert set(states) - {b"COMPLETED"} <= {b"QUEUED"} and len(states) - len(runs) <= 2
    ticks = sorted(int(i.split("@")[1]) // 1000 for i in ids)
    assert len(ticks) >= duration_s - 4
    assert all(b - a == 1 for a, b in itertools.pairwise(ticks)), "a tick was skipped"
