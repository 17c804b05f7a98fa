"""Two scheduler processes on one SQLite file share an every-second schedule:
each tick becomes exactly one task, run exactly once."""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

DURATION_S = 20

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from asched import Scheduler

    db, ledger, end = sys.argv[1], sys.argv[2], float(sys.argv[3])
    scheduler = Scheduler(f"sqlite:///{db}")

    @scheduler.task("tick")
    async def tick() -> None:
        with open(ledger, "a") as out:
            out.write(f"{os.getpid()} {time.time():.3f}\\n")

    async def main() -> None:
        async with scheduler:
            # Both processes declare the same schedule; the id makes it one schedule.
            await scheduler.schedule_recurring("tick", cron="* * * * * *", timezone="UTC",
                                               schedule_id="every-second")
            await asyncio.sleep(max(0.0, end - time.time()))

    asyncio.run(main())
    """
)


def test_every_second_schedule_fires_once_per_tick(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    ledger = tmp_path / "ledger.txt"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    end = time.time() + DURATION_S
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    children = [
        subprocess.Popen([sys.executable, str(script), str(db), str(ledger), str(end)], env=env)
        for _ in range(2)
    ]
    for child in children:
        assert child.wait(timeout=DURATION_S + 25) == 0

    runs = [line.split() for line in ledger.read_text().splitlines()]
    seconds = Counter(int(float(at)) for _, at in runs)
    assert seconds and max(seconds.values()) == 1, "a tick ran twice"
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT id, lifecycle FROM tasks WHERE id LIKE 'every-second@%'"
        ).fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = [task_id for task_id, _ in rows]
    # One task per tick in the store; each one that completed ran exactly once.  A
    # tick created as the processes stopped is handed back unrun (QUEUED).
    assert len(ids) == len(set(ids))
    completed = [task_id for task_id, state in rows if state == "COMPLETED"]
    assert len(completed) == len(runs)
    leftover = [state for _, state in rows if state != "COMPLETED"]
    assert set(leftover) <= {"QUEUED"} and len(leftover) <= 2
    ticks = sorted(int(i.split("@")[1]) // 1000 for i in ids)
    assert len(ticks) >= DURATION_S - 4
    assert all(b - a == 1 for a, b in itertools.pairwise(ticks)), "a tick was skipped"
