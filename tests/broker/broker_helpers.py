"""Helpers for the broker tests: child processes and bounded waits."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path


class Processes:
    """Child processes started with the test's app directory on PYTHONPATH."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        with open(self.root / log, "wb") as out:
            child = subprocess.Popen(
                [sys.executable, *args], cwd=self.root, env=self.env, stdout=out, stderr=out
            )
        self.children.append(child)
        return child

    def worker(self, app: str, *options: str, log: str) -> subprocess.Popen[bytes]:
        return self.start("-m", "asched.cli", "worker", app, *options, log=log)


def wait_until(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")


def stored_states(db: Path) -> Counter[str]:
    if not db.exists():
        return Counter()
    with sqlite3.connect(db) as conn:
        try:
            return Counter(row[0] for row in conn.execute("SELECT lifecycle FROM tasks"))
        except sqlite3.OperationalError:  # not created yet
            return Counter()


def ledger_lines(ledger: Path) -> list[tuple[int, int]]:
    if not ledger.exists():
        return []
    lines = ledger.read_text().splitlines()
    return [(int(n), int(pid)) for n, pid in (line.split() for line in lines if line.strip())]


#: The app every end-to-end test runs: its scheduler reads the broker settings
#: from ASCHED_BROKER / ASCHED_BROKER_PREFIX, as a deployed app would.
APP = """
import asyncio, os, time
from asched import Scheduler, SchedulerConfig

scheduler = Scheduler(config=SchedulerConfig.from_env(), max_concurrency=1000)
LEDGER = os.environ.get("LEDGER", "ledger.txt")
MARKS = os.environ.get("MARKS", "marks.txt")


def _note(path, line):
    with open(path, "a") as out:
        out.write(line + "\\n")


@scheduler.task("work", executor="distributed", max_retries=5)
async def work(n: int, delay: float = 0.0) -> int:
    await asyncio.sleep(delay)
    _note(LEDGER, f"{n} {os.getpid()}")
    return n


@scheduler.task("slow", executor="distributed", max_retries=0)
async def slow(name: str, seconds: float = 60.0) -> str:
    _note(MARKS, f"started {name}")
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        _note(MARKS, f"cancelled {name}")
        raise
    return name


@scheduler.task("boom", executor="distributed")
def boom(why: str) -> None:
    _note(MARKS, f"boom {os.getpid()}")
    raise ValueError(why)


def crunch(name: str) -> str:
    _note(MARKS, f"child {name} {os.getpid()}")
    time.sleep(60)
    return name


scheduler.register("crunch", crunch, executor="distributed-process", max_retries=0)


async def on_start(scheduler):
    count = int(os.environ.get("COUNT", "0"))
    delay = float(os.environ.get("DELAY", "0"))
    if count:
        await scheduler.schedule_many(
            [{"task_type": "work", "task_data": {"n": n, "delay": delay}} for n in range(count)]
        )
"""
