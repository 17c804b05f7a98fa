"""A short soak of a content bot on two default workers, with an API outage.

A producer fires "render" for 8 channels twice a second (as cron plans would);
each render schedules an "upload" behind the ``api`` circuit breaker and an
"announce" that depends on it.  For a few seconds the API is down: uploads fail,
the breakers open, half-open trials fail, then it comes back.  Afterwards
nothing may stay stuck: every task ends, every upload and announce completes,
no task runs twice, no announce starts before its upload completed, and both
breakers close again.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

WORKER = textwrap.dedent(
    """
    import asyncio, logging, os, sys, time
    from asched import Scheduler

    logging.basicConfig(level=logging.WARNING, filename=sys.argv[1] + f".{os.getpid()}.log")
    db, ledger, stop_file, outage = sys.argv[1:5]
    s = Scheduler(f"sqlite:///{db}", lease_s=2.0, max_concurrency=30, grace_period_s=5,
                  poll_interval_s=0.2)
    s.configure_breaker("api", failure_threshold=3, recovery_s=1.0, half_open_max_calls=1)

    def note(kind, task_id):
        with open(ledger, "a") as out:
            out.write(f"{kind} {task_id} {time.time():.6f} {os.getpid()}\\n")

    def heard(event):
        if not hasattr(event, "task_id"):
            note(type(event).__name__, "api")

    s.subscribe(heard)

    @s.task("render", max_retries=3)
    async def render(channel: int, n: int) -> None:
        await asyncio.sleep(0.005)
        upload = await s.schedule_task("upload", {"channel": channel, "n": n},
                                       task_id=f"up-{channel}-{n}")
        await s.schedule_task("announce", {"channel": channel, "n": n},
                              task_id=f"an-{channel}-{n}", dependencies=[upload])

    @s.task("upload", breaker="api", max_retries=50, backoff_factor=1.1)
    async def upload(channel: int, n: int) -> None:
        if os.path.exists(outage):
            raise ConnectionError("API down")
        await asyncio.sleep(0.01)
        note("uploaded", f"up-{channel}-{n}")

    @s.task("announce", max_retries=3)
    async def announce(channel: int, n: int) -> None:
        note("announced", f"an-{channel}-{n}")

    async def main() -> None:
        async with s:
            while not os.path.exists(stop_file):
                await asyncio.sleep(0.05)

    asyncio.run(main())
    """
)

PRODUCER = textwrap.dedent(
    """
    import asyncio, sys
    from asched import Scheduler

    db, rounds = sys.argv[1], int(sys.argv[2])
    producer = Scheduler(f"sqlite:///{db}", strict_task_types=False)

    async def main() -> None:
        async with producer:
            for n in range(rounds):
                await producer.schedule_many(
                    [{"task_type": "render", "task_data": {"channel": c, "n": n},
                      "task_id": f"render-{c}-{n}"} for c in range(8)])
                await asyncio.sleep(0.5)

    asyncio.run(main())
    """
)


def spawn(script: Path, *args: object) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env)


def states(db: Path) -> Counter[str]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return Counter(row[0] for row in conn.execute("SELECT lifecycle FROM tasks"))
    except sqlite3.OperationalError:
        return Counter()
    finally:
        conn.close()


def test_two_workers_come_through_an_outage_with_nothing_stuck(tmp_path: Path) -> None:
    rounds = 24  # 12 s of fires, 8 channels: 192 renders, uploads and announces
    db, ledger, stop, outage = (tmp_path / n for n in ("bot.db", "ledger", "stop", "outage"))
    worker, producer = tmp_path / "worker.py", tmp_path / "producer.py"
    worker.write_text(WORKER)
    producer.write_text(PRODUCER)
    ledger.touch()
    workers = [spawn(worker, db, ledger, stop, outage) for _ in range(2)]
    feeding = spawn(producer, db, rounds)
    try:
        time.sleep(3)
        outage.touch()  # the API goes down for 4 s
        time.sleep(4)
        outage.unlink()
        assert feeding.wait(timeout=60) == 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            counts = states(db)
            if counts["COMPLETED"] == 3 * 8 * rounds:
                break
            time.sleep(0.2)
        counts = states(db)
    finally:
        stop.touch()
        codes = [w.wait(timeout=30) for w in workers]
    assert codes == [0, 0]
    assert counts == Counter({"COMPLETED": 3 * 8 * rounds}), counts
    lines = [line.split() for line in ledger.read_text().splitlines()]
    done = Counter(task_id for kind, task_id, _, _ in lines if kind in ("uploaded", "announced"))
    assert max(done.values()) == 1, "a task ran twice"
    uploaded_at = {t: float(at) for kind, t, at, _ in lines if kind == "uploaded"}
    for kind, task_id, at, _ in lines:
        if kind == "announced":
            assert float(at) >= uploaded_at["up" + task_id[2:]], "announced before its upload"
    breaker = [(kind, pid) for kind, _, _, pid in lines if kind.startswith("Circuit")]
    opened = {pid for kind, pid in breaker if kind == "CircuitOpened"}
    assert opened, "the outage should have opened a breaker"
    for pid in opened:
        last = [kind for kind, p in breaker if p == pid][-1]
        assert last == "CircuitClosed", f"worker {pid}'s breaker ended {last}"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
