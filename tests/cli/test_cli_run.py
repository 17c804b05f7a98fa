"""``asched run``: a worker process that drains on SIGTERM/SIGINT and loses nothing.

``cli`` (see conftest.py) runs ``python -m asched.cli`` in tmp_path with tmp_path on
PYTHONPATH; ``until`` polls a condition with a deadline.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from typing import Any

import pytest

APP = """\
import asyncio
from pathlib import Path
from asched import Scheduler

scheduler = Scheduler()
RELEASE = Path(__file__).with_name("release")

@scheduler.task("block")
async def block() -> str:
    while not RELEASE.exists():
        await asyncio.sleep(0.02)
    return "released"

@scheduler.task("quick")
async def quick(n: int) -> int:
    return n * 2
"""

HOOKED_APP = """\
from asched import Scheduler

worker = Scheduler()

@worker.task("report")
async def report() -> None:
    return None

async def on_start(scheduler):
    await scheduler.schedule_recurring("report", interval=3600, schedule_id="hourly")
"""

# Due one second after the producer stops: the producer has no handlers, the worker has.
QUICK = [{"task_type": "quick", "task_data": {"n": n}, "delay": 1.0} for n in range(5)]
BLOCK = {"task_type": "block", "delay": 1.0, "priority": "HIGH"}
LATER = {"task_type": "quick", "task_data": {"n": 99}, "delay": 3600}


def _stop(child: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, str]:
    child.send_signal(sig)
    _, err = child.communicate(timeout=15)
    return child.returncode, err


def _worker(cli: Any, *extra: str) -> subprocess.Popen[str]:
    child: subprocess.Popen[str] = cli.spawn("run", "app:scheduler", "--store", cli.url, *extra)
    return child


def test_sigterm_hands_the_running_task_back_and_loses_nothing(cli: Any, until: Any) -> None:
    cli.write("app.py", APP)
    ids = cli.produce([BLOCK, *QUICK, LATER])
    worker = _worker(cli, "--grace", "0.3")
    block_id, quick_ids, later_id = ids[0], ids[1:-1], ids[-1]
    until(lambda: cli.states().get(block_id) == "RUNNING", "the task to run", child=worker)

    code, err = _stop(worker, signal.SIGTERM)

    assert code == 0, err
    assert "SIGTERM received: draining" in err
    states = cli.states()
    assert set(ids) <= set(states)
    assert states[block_id] == "QUEUED"
    assert "shutdown" in cli.record(block_id)["history"][-1][3]
    assert states[later_id] == "QUEUED"
    assert all(states[i] in ("QUEUED", "SCHEDULED", "COMPLETED") for i in quick_ids)
    assert cli.integrity() == "ok"


def test_sigterm_lets_a_running_task_finish_within_the_grace(cli: Any, until: Any) -> None:
    cli.write("app.py", APP)
    (block_id,) = cli.produce([BLOCK])
    worker = _worker(cli, "--grace", "20")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(worker.stderr.readline, "")))
    reader.start()
    until(lambda: cli.states().get(block_id) == "RUNNING", "the task to run", child=worker)
    worker.send_signal(signal.SIGTERM)
    until(lambda: "draining" in "".join(lines), "the worker to start draining", child=worker)
    (cli.root / "release").touch()

    worker.wait(timeout=15)
    reader.join(timeout=5)

    assert worker.returncode == 0, "".join(lines)
    assert cli.states()[block_id] == "COMPLETED"
    assert cli.record(block_id)["result"] == "released"


def test_a_second_signal_ends_the_grace_period(cli: Any, until: Any) -> None:
    cli.write("app.py", APP)
    (block_id,) = cli.produce([BLOCK])
    worker = _worker(cli, "--grace", "60")
    until(lambda: cli.states().get(block_id) == "RUNNING", "the task to run", child=worker)
    worker.send_signal(signal.SIGTERM)
    code, err = _stop(worker, signal.SIGINT)  # long before the 60 s grace is over

    assert code == 0, err
    assert "second stop signal" in err
    assert cli.states()[block_id] == "QUEUED"
    assert cli.integrity() == "ok"


def test_a_worker_runs_what_an_earlier_process_scheduled(cli: Any, until: Any) -> None:
    cli.write("app.py", APP)
    ids = cli.produce(QUICK)
    worker = _worker(cli, "--concurrency", "2")

    def all_done() -> bool:
        states = cli.states()
        return all(states.get(i) == "COMPLETED" for i in ids)

    until(all_done, "every task to complete", child=worker)
    code, err = _stop(worker, signal.SIGINT)

    assert code == 0, err
    assert "concurrency 2" in err and "task types: block, quick" in err
    assert [cli.record(i)["result"] for i in ids] == [0, 2, 4, 6, 8]
    assert cli.integrity() == "ok"


def test_on_start_runs_and_the_default_store_is_sqlite_in_the_cwd(cli: Any, until: Any) -> None:
    cli.write("hooked.py", HOOKED_APP)
    db = cli.root / "asched.db"
    worker = cli.spawn("run", "hooked:worker", "--log-level", "warning")

    def has_schedule() -> bool:
        if not db.exists():
            return False
        found = cli.run("schedules", "--store", f"sqlite:///{db}")
        return "hourly" in found.stdout

    until(has_schedule, "on_start to create the schedule", child=worker)
    code, err = _stop(worker, signal.SIGTERM)

    assert code == 0, err
    assert f"SQLiteStore {db}" in err
    assert "INFO" not in err  # --log-level warning


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("app", "APP must be module:attribute"),
        ("no_such_module:scheduler", "no module named 'no_such_module'"),
        ("app:missing", "has no attribute 'missing'"),
        ("app:RELEASE", "is a PosixPath, not an asched Scheduler"),
        ("broken:scheduler", "importing 'broken' failed: ZeroDivisionError"),
    ],
)
def test_a_bad_app_is_a_usage_error(cli: Any, app: str, message: str) -> None:
    cli.write("app.py", APP)
    cli.write("broken.py", "1 / 0\n")

    done = cli.run("run", app, "--store", cli.url)

    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not cli.db.exists()
