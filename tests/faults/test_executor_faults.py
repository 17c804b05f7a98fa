"""Executors: the process executor's decorator form, typed errors, and thread
handlers that cannot hold up a shutdown."""

from __future__ import annotations

import signal
import time

import pytest
from fault_procs import AschedProcess, wait_until

from asched import (
    AschedError,
    ConfigError,
    Scheduler,
    SchedulerStateError,
    TaskFailedError,
    TaskValidationError,
)
from asched.executors import ProcessExecutor

DECORATED_APP = """\
from asched import Scheduler

scheduler = Scheduler(process_pool_size=1)

@scheduler.task("render", executor="process")
def render(frame: int) -> dict:
    import os
    return {"frame": frame, "pid": os.getpid()}

async def on_start(s):
    await s.schedule_task("render", {"frame": 7}, task_id="render-7")
"""

DECORATED_SCRIPT = """\
import asyncio, os
from asched import Scheduler

scheduler = Scheduler(process_pool_size=1)

@scheduler.task("render", executor="process")
def render(frame: int) -> dict:
    return {"frame": frame, "pid": os.getpid()}

async def main():
    async with scheduler:
        tid = await scheduler.schedule_task("render", {"frame": 3})
        result = await scheduler.wait_for(tid, timeout=60)
    assert result["frame"] == 3 and result["pid"] != os.getpid(), result
    print("ok")

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_the_decorator_form_works_in_a_script(proc: AschedProcess) -> None:
    done = proc.python(DECORATED_SCRIPT, timeout=90)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_decorator_form_works_under_asched_run(proc: AschedProcess) -> None:
    proc.write("renderapp.py", DECORATED_APP)
    done = proc.run("run", "renderapp:scheduler", "--store", proc.url, "--until-idle", timeout=90)
    assert done.returncode == 0, done.stderr
    assert proc.states()["render-7"] == "COMPLETED"


SHADOWED = """\
import asyncio
from asched import Scheduler, TaskValidationError

scheduler = Scheduler()

@scheduler.task("render", executor="process")
def render() -> None:
    return None

render = "something else"  # the module no longer names the handler

async def main():
    try:
        await scheduler.start()
    except TaskValidationError as exc:
        print("start:", exc.field)
    else:
        raise AssertionError("started")

asyncio.run(main())
"""


def test_a_handler_its_module_does_not_name_is_refused_at_start(proc: AschedProcess) -> None:
    done = proc.python(SHADOWED)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "start: handler"


async def test_a_late_registration_is_checked_when_first_scheduled() -> None:
    scheduler = Scheduler()
    async with scheduler:

        def local_name() -> None:
            return None

        with pytest.raises(TaskValidationError, match="nested function"):
            scheduler.register("nested", local_name, executor="process")
        import fault_handlers

        scheduler.register("sleeps", fault_handlers.sleeps, executor="process")
        original = fault_handlers.sleeps
        try:
            fault_handlers.sleeps = lambda seconds: "impostor"
            with pytest.raises(TaskValidationError, match="does not name this object"):
                await scheduler.schedule_task("sleeps", {"seconds": 0})
        finally:
            fault_handlers.sleeps = original
        tid = await scheduler.schedule_task("sleeps", {"seconds": 0})
        assert await scheduler.wait_for(tid, timeout=60) == "slept"


def test_process_executor_errors_are_asched_errors() -> None:
    with pytest.raises(ConfigError):
        ProcessExecutor(0)
    with pytest.raises(ConfigError):
        ProcessExecutor(1, start_method="fork")


async def test_a_shut_down_process_executor_says_so() -> None:
    executor = ProcessExecutor(1)
    await executor.start()
    await executor.shutdown()
    import fault_handlers

    with pytest.raises(SchedulerStateError, match="shut down"):
        await executor.run(fault_handlers.sleeps, {"seconds": 0})
    assert issubclass(SchedulerStateError, AschedError)


# -- thread handlers and shutdown -------------------------------------------------------

SLEEPY_APP = """\
import time
from asched import Scheduler

scheduler = Scheduler(thread_pool_size=2)

@scheduler.task("nap", executor="thread", max_retries=0)
def nap(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"

async def on_start(s):
    await s.schedule_task("nap", {"seconds": 600}, task_id="timed", timeout=1)
    await s.schedule_task("nap", {"seconds": 600}, task_id="stuck")
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_sleeping_thread_does_not_hold_up_shutdown(
    proc: AschedProcess, sig: signal.Signals
) -> None:
    proc.write("sleepy.py", SLEEPY_APP)
    worker = proc.spawn("run", "sleepy:scheduler", "--store", proc.url, "--grace", "0.5")
    wait_until(lambda: proc.states().get("timed") == "FAILED", "the timeout", child=worker)
    assert proc.states()["stuck"] == "RUNNING"
    sent = time.monotonic()
    worker.send_signal(sig)
    _, err = worker.communicate(timeout=20)
    took = time.monotonic() - sent
    assert worker.returncode == 0, err
    assert took < 0.5 + 4.0, f"shutdown took {took:.1f}s"
    assert proc.states()["stuck"] == "QUEUED"


def test_until_idle_ends_despite_an_abandoned_thread(proc: AschedProcess) -> None:
    proc.write("sleepy.py", SLEEPY_APP.replace('task_id="stuck")', 'task_id="stuck", timeout=1)'))
    started = time.monotonic()
    done = proc.run("run", "sleepy:scheduler", "--store", proc.url, "--until-idle", timeout=30)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 15
    assert proc.states() == {"timed": "FAILED", "stuck": "FAILED"}


async def test_a_thread_timeout_fails_the_task_at_once() -> None:
    scheduler = Scheduler()

    @scheduler.task("nap", executor="thread", max_retries=0)
    def nap() -> None:
        time.sleep(1.5)

    async with scheduler:
        started = time.monotonic()
        tid = await scheduler.schedule_task("nap", timeout=0.1)
        with pytest.raises(TaskFailedError, match="timed out"):
            await scheduler.wait_for(tid, timeout=10)
        assert time.monotonic() - started < 1.0
