"""``asched dashboard`` and ``asched run APP --dashboard PORT`` as processes."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboard_helpers import Populated

from asched.dashboard.serve import build_server, is_loopback

APP = """\
import asyncio
from asched import Scheduler

scheduler = Scheduler()

@scheduler.task("render")
async def render(n: int) -> int:
    await asyncio.sleep(60)
    return n
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _spawn(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "asched.cli", *args],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _get_when_up(child: subprocess.Popen[str], url: str, timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        if child.poll() is not None:
            raise AssertionError(f"exited {child.returncode}: {child.communicate()[1]}")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer"
        time.sleep(0.1)


def _stop(child: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, str]:
    child.send_signal(sig)
    _, err = child.communicate(timeout=20)
    return child.returncode, err


def test_dashboard_command_serves_a_store(populated: Populated, tmp_path: Path) -> None:
    port = _free_port()
    child = _spawn(tmp_path, "dashboard", "--store", populated.url, "--port", str(port))
    try:
        counts = _get_when_up(child, f"http://127.0.0.1:{port}/api/counts")
        assert counts["by_type"]["render_video"] == 7
        rebound = httpx.get(f"http://127.0.0.1:{port}/api/counts", headers={"Host": "evil.test"})
        assert rebound.status_code == 400  # bound to loopback without a token: loopback names only
    finally:
        code, err = _stop(child, signal.SIGTERM)
    assert code == 0, err


def test_dashboard_command_refuses_a_missing_store(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "asched.cli", "dashboard", "--store", "sqlite:///nope.db"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "no database at" in done.stderr and "nope.db" in done.stderr


def test_run_with_dashboard_shows_the_live_worker(tmp_path: Path) -> None:
    (tmp_path / "bot.py").write_text(APP)
    port = _free_port()
    url = f"sqlite:///{tmp_path / 'work.db'}"
    child = _spawn(tmp_path, "run", "bot:scheduler", "--store", url, "--dashboard", str(port))
    try:
        [worker] = _get_when_up(child, f"http://127.0.0.1:{port}/api/workers")
        assert worker["this_process"] is True and worker["task_types"] == ["render"]
        metrics = httpx.get(f"http://127.0.0.1:{port}/api/metrics").json()
        assert metrics["max_concurrency"] == 1000
    finally:
        code, err = _stop(child, signal.SIGTERM)
    assert code == 0, err
    assert "draining" in err


def test_binding_elsewhere_without_a_token_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asched.dashboard.serve"):
        build_server("sqlite:///unused.db", host="0.0.0.0", port=_free_port())
    assert "without a token" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="asched.dashboard.serve"):
        build_server("sqlite:///unused.db", host="0.0.0.0", port=_free_port(), token="t")
        build_server("sqlite:///unused.db", host="127.0.0.1", port=_free_port())
    assert caplog.text == ""
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "10.0.0.5")] == [
        True,
        True,
        True,
        False,
        False,
    ]
