"""Helpers for driving the ``asched`` command in child processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from asched.model import Task
from asched.model.codec import decode_stored

PRODUCER = """\
import asyncio, json, sys
from asched import Scheduler

async def main(url, specs):
    scheduler = Scheduler(url, strict_task_types=False)
    async with scheduler:
        ids = [await scheduler.schedule_task(**spec) for spec in specs]
    print(json.dumps(ids))

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
"""


class Cli:
    """Runs ``python -m asched.cli`` in ``root`` with ``root`` on PYTHONPATH."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "work.db"
        self.url = f"sqlite:///{self.db}"
        self._children: list[subprocess.Popen[str]] = []

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.root), env.get("PYTHONPATH")]))
        return env

    def write(self, name: str, source: str) -> Path:
        path = self.root / name
        path.write_text(source)
        return path

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "asched.cli", *args],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-m", "asched.cli", *args],
            cwd=self.root,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._children.append(child)
        return child

    def produce(self, specs: Sequence[dict[str, Any]]) -> list[str]:
        """Schedule tasks from a separate producer process; returns their ids."""
        script = self.write("producer.py", PRODUCER)
        done = subprocess.run(
            [sys.executable, str(script), self.url, json.dumps(list(specs))],
            cwd=self.root,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        ids: list[str] = json.loads(done.stdout)
        return ids

    def states(self) -> dict[str, str]:
        """Task id -> lifecycle name, read straight from the database file."""
        if not self.db.exists():
            return {}
        with _connect(self.db) as db:
            return dict(db.execute("SELECT id, lifecycle FROM tasks").fetchall())

    def record(self, task_id: str) -> dict[str, Any]:
        """The task's whole record, read straight from the file: the state row, plus
        the data and the result, which the store keeps in tables of their own."""
        with _connect(self.db) as db:
            text, data, result = db.execute(
                "SELECT record, (SELECT data FROM task_data WHERE task_data.id = tasks.id), "
                "(SELECT result FROM task_results WHERE task_results.id = tasks.id) "
                "FROM tasks WHERE id = ?",
                (task_id,),
            ).fetchone()
        return decode_stored(text, data, result, Task).to_dict()

    def integrity(self) -> str:
        with _connect(self.db) as db:
            (result,) = db.execute("PRAGMA integrity_check").fetchone()
        return str(result)

    def close(self) -> None:
        for child in self._children:
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
            child.communicate(timeout=10)


class _connect:
    """A short-lived connection that is always closed (sqlite3's own context
    manager only commits)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, timeout=5)

    def __enter__(self) -> sqlite3.Connection:
        return self._db

    def __exit__(self, *exc: object) -> None:
        self._db.close()


def wait_until(
    predicate: Callable[[], bool],
    what: str,
    timeout: float = 10.0,
    child: subprocess.Popen[str] | None = None,
) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` or if ``child`` exits."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if child is not None and child.poll() is not None:
            _, err = child.communicate()
            raise AssertionError(f"the worker exited ({child.returncode}) before {what}:\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    helper = Cli(tmp_path)
    yield helper
    helper.close()


@pytest.fixture
def until() -> Callable[..., None]:
    return wait_until
