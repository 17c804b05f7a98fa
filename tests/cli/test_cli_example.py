"""The README's first command: the example bot on the embedded SQLite default."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path


def test_example_bot_runs_until_idle_on_sqlite(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "asched.cli",
            "run",
            "asched.examples.contentbot:scheduler",
            "--until-idle",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "planned the day for 3 channels" in done.stderr
    assert "no unfinished tasks left; stopping" in done.stderr
    with sqlite3.connect(tmp_path / "asched.db") as conn:  # the default store
        rows = conn.execute("SELECT type, lifecycle FROM tasks").fetchall()
        schedules = conn.execute("SELECT COUNT(*) FROM schedules").fetchone()[0]
    states = Counter(state for _, state in rows)
    assert len(rows) == 12
    # The upload API fails 30% of attempts: rarely one fails for good and its
    # announcement is cancelled.  Nothing is left unfinished.
    assert set(states) <= {"COMPLETED", "FAILED", "CANCELLED"}
    assert Counter(kind for kind, state in rows if state == "COMPLETED")["render_video"] == 3
    assert schedules == 1
