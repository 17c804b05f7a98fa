"""``asched run`` with handlers that raise BaseExceptions: it stays responsive."""

from __future__ import annotations

import signal

import pytest
from fault_procs import AschedProcess, wait_until

APP = """\
import asyncio
from asched import Scheduler

scheduler = Scheduler(max_concurrency=1)

class Meltdown(BaseException):
    pass

RAISE = {
    "sysexit": lambda: SystemExit(3),
    "kbi": KeyboardInterrupt,
    "genexit": GeneratorExit,
    "meltdown": lambda: Meltdown("core"),
    "cancel": asyncio.CancelledError,
}

@scheduler.task("bad", max_retries=0)
async def bad(kind: str) -> None:
    raise RAISE[kind]()

@scheduler.task("bad_thread", executor="thread", max_retries=0)
def bad_thread(kind: str) -> None:
    raise RAISE[kind]()

@scheduler.task("wait")
async def wait() -> None:
    await asyncio.Event().wait()

async def on_start(s):
    for kind in RAISE:
        await s.schedule_task("bad", {"kind": kind}, task_id=f"async-{kind}")
        await s.schedule_task("bad_thread", {"kind": kind}, task_id=f"thread-{kind}")
"""

KINDS = ["sysexit", "kbi", "genexit", "meltdown", "cancel"]


def test_until_idle_ends_with_every_attempt_failed(proc: AschedProcess) -> None:
    proc.write("app.py", APP)
    done = proc.run("run", "app:scheduler", "--store", proc.url, "--until-idle", "--grace", "1")
    assert done.returncode == 0, done.stderr
    states = proc.states()
    expected = {f"{where}-{kind}" for where in ("async", "thread") for kind in KINDS}
    assert {k: v for k, v in states.items() if k in expected} == dict.fromkeys(expected, "FAILED")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_still_stop_the_worker(proc: AschedProcess, sig: signal.Signals) -> None:
    proc.write("app.py", APP)
    worker = proc.spawn("run", "app:scheduler", "--store", proc.url, "--grace", "0.2")
    expected = {f"{where}-{kind}" for where in ("async", "thread") for kind in KINDS}
    wait_until(
        lambda: all(proc.states().get(i) == "FAILED" for i in expected),
        "every raising handler to fail",
        child=worker,
    )
    worker.send_signal(sig)
    _, err = worker.communicate(timeout=15)
    assert worker.returncode == 0, err
    assert "stopped" in err
