"""A background task of the scheduler that dies makes the scheduler fail loudly:
callers get a SchedulerCrashedError, stop() raises it, ``asched run`` exits 1."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from fault_procs import AschedProcess

from asched import RetryPolicy, Scheduler, SchedulerCrashedError, SchedulerStateError
from asched.model import Task
from asched.stores import Lease
from asched.stores.sqlite import SQLiteStore


class Meltdown(BaseException):
    """Not an Exception: the write-back's error handling does not catch it."""


class MeltingStore(SQLiteStore):
    """Saves fine until ``melt`` is set, then raises a BaseException from save()."""

    melt = False

    async def save(
        self, tasks: Sequence[Task], leases: Mapping[str, Lease] | None = None
    ) -> list[str]:
        if self.melt:
            raise Meltdown("the disk caught fire")
        return await super().save(tasks, leases)

    def closed_cleanly(self) -> bool:
        """Its database threads have ended."""
        return not any(t.name.startswith("asched-sqlite") for t in threading.enumerate())


async def test_callers_get_the_crash_and_stop_raises_it(tmp_path: Path) -> None:
    store = MeltingStore(str(tmp_path / "melt.db"))
    scheduler = Scheduler(store)
    gate = asyncio.Event()

    @scheduler.task("wait")
    async def wait() -> None:
        await gate.wait()

    await scheduler.start()
    crashed = asyncio.ensure_future(scheduler.wait_crashed())
    waiting = await scheduler.schedule_task("wait")
    waiter = asyncio.ensure_future(scheduler.wait_for(waiting))
    later = await scheduler.schedule_task("wait", delay=60)
    store.melt = True
    await scheduler.pause_task(later)  # its write-back kills the flusher
    error = await asyncio.wait_for(crashed, 10)
    assert isinstance(error, SchedulerCrashedError)
    assert "write-back flusher" in str(error) and "Meltdown" in str(error)
    with pytest.raises(SchedulerCrashedError):
        await asyncio.wait_for(waiter, 10)
    with pytest.raises(SchedulerCrashedError, match="flusher"):
        await scheduler.schedule_task("wait")
    store.melt = False
    gate.set()
    with pytest.raises(SchedulerCrashedError):
        await asyncio.wait_for(scheduler.stop(grace_s=1), 20)
    await scheduler.stop()  # once is enough: a second stop does nothing
    assert await scheduler.wait_crashed() is error
    assert store.closed_cleanly()


async def test_a_clean_stop_ends_wait_crashed(tmp_path: Path) -> None:
    scheduler = Scheduler(f"sqlite:///{tmp_path / 'clean.db'}")
    await scheduler.start()
    crashed = asyncio.ensure_future(scheduler.wait_crashed())
    await asyncio.sleep(0)
    await scheduler.stop()
    with pytest.raises(SchedulerStateError, match="stopped"):
        await crashed


MELTING_APP = """\
from asched import Scheduler
from asched.stores.sqlite import SQLiteStore

class Meltdown(BaseException):
    pass

class MeltingStore(SQLiteStore):
    async def save(self, tasks, leases=None):
        if any(t.type == "melt" for t in tasks):
            raise Meltdown("the disk caught fire")
        return await super().save(tasks, leases)

scheduler = Scheduler(MeltingStore("work.db"))

@scheduler.task("melt")
async def melt() -> None:
    return None

async def on_start(s):
    await s.schedule_task("melt")
"""


@pytest.mark.parametrize("until_idle", [False, True])
def test_asched_run_exits_non_zero(proc: AschedProcess, until_idle: bool) -> None:
    proc.write("meltapp.py", MELTING_APP)
    extra = ["--until-idle"] if until_idle else []
    started = time.monotonic()
    done = proc.run("run", "meltapp:scheduler", "--grace", "1", *extra, timeout=60)
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 30
    assert "write-back flusher died" in done.stderr
    assert done.stderr.rstrip().splitlines()[-1].startswith("asched run: error:")


class BrokenRandom(random.Random):
    """A random source (Scheduler(rng=...)) that breaks when a jittered retry draws."""

    def random(self) -> float:
        raise RuntimeError("entropy ran out")


async def test_an_error_while_settling_an_attempt_fails_loudly() -> None:
    scheduler = Scheduler(rng=BrokenRandom())

    @scheduler.task("flaky", retry=RetryPolicy(max_retries=2, jitter="full"))
    async def flaky() -> None:
        raise ValueError("try again")

    await scheduler.start()
    tid = await scheduler.schedule_task("flaky")
    with pytest.raises(SchedulerCrashedError, match="entropy ran out"):
        await asyncio.wait_for(scheduler.wait_for(tid), 10)
    with pytest.raises(SchedulerCrashedError):
        await scheduler.schedule_task("flaky")
    with pytest.raises(SchedulerCrashedError):
        await asyncio.wait_for(scheduler.stop(grace_s=1), 10)
