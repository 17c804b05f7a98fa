"""The operator commands and the store file: reads never write, damage and foreign
files give one line naming the file, ``asched purge`` removes old finished tasks."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from asched import Scheduler


def asched(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run(
        [sys.executable, "-m", "asched", *args], capture_output=True, text=True, env=env, timeout=60
    )


def files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.parent.glob(path.name + "*")}


def test_list_on_a_foreign_file_changes_nothing_and_says_so(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    before = files(other)
    done = asched("list", "--store", f"sqlite:///{other}")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"asched list: error: not an asched store: {other}"]
    assert files(other) == before


def test_a_damaged_file_gives_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    asyncio.run(_make(path, finished=0))
    data = path.read_bytes()
    path.write_bytes(b"\0" * 100 + data[100:])
    done = asched("list", "--store", f"sqlite:///{path}")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "damaged" in lines[0]
    assert "Traceback" not in done.stderr


def test_purge_removes_finished_tasks_older_than_asked(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    asyncio.run(_make(path, finished=3))
    done = asched("purge", "--older-than", "3600", "--store", f"sqlite:///{path}")
    assert (done.returncode, done.stdout.strip()) == (0, "purged 0 finished tasks")
    done = asched("purge", "--older-than", "0", "--store", f"sqlite:///{path}")
    assert (done.returncode, done.stdout.strip()) == (0, "purged 3 finished tasks")
    with sqlite3.connect(path) as db:
        left = db.execute("SELECT lifecycle FROM tasks").fetchall()
    assert left == [("QUEUED",)]  # the unfinished one stays


async def _make(path: Path, finished: int) -> None:
    s = Scheduler(f"sqlite:///{path}")

    @s.task("job")
    async def job() -> int:
        return 1

    async with s:
        for _ in range(finished):
            await s.wait_for(await s.schedule_task("job"))
        await s.schedule_task("job", delay=3600)
