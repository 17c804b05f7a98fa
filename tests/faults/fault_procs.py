"""Helpers for the fault tests that need real ``asched`` processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


class AschedProcess:
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

    def python(
        self, script: str, *args: str, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        path = self.write("script.py", script)
        return subprocess.run(
            [sys.executable, str(path), *args],
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

    def states(self) -> dict[str, str]:
        """Task id -> lifecycle name, read straight from the database file."""
        if not self.db.exists():
            return {}
        db = sqlite3.connect(self.db, timeout=5)
        try:
            return dict(db.execute("SELECT id, lifecycle FROM tasks").fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # the worker is still creating the store
                return {}
            raise
        finally:
            db.close()

    def close(self) -> None:
        for child in self._children:
            if child.poll() is None:
                child.kill()
            child.communicate(timeout=10)


def wait_until(
    predicate: Callable[[], bool],
    what: str,
    timeout: float = 15.0,
    child: subprocess.Popen[str] | None = None,
) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` or if ``child`` exits."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if child is not None and child.poll() is not None:
            _, err = child.communicate()
            raise AssertionError(f"the process exited ({child.returncode}) before {what}:\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)
