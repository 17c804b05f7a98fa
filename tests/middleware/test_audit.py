"""The audit trail: who scheduled a task and from where, every change, who asked."""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from asched import Scheduler, SchedulerFacade, TaskLifecycle
from asched.errors import MiddlewareError
from asched.middleware import acting_as


async def test_scheduling_records_the_callers_module_line_and_actor(tmp_path: Path) -> None:
    async with Scheduler(strict_task_types=False) as s:
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        tid = await s.schedule_task("report", delay=60)
        with acting_as("alice"):
            other = await s.schedule_task("report", delay=60)
        created = (await s.get_audit_trail(tid))[0]
        assert created["action"] == "created"
        assert created["module"] == __name__
        assert created["function"] == "test_scheduling_records_the_callers_module_line_and_actor"
        assert (created["file"], created["line"]) == (__file__, line)
        assert (created["pid"], created["host"]) == (os.getpid(), os.uname().nodename)
        assert (await s.get_audit_trail(other))[0]["by"] == "alice"
        explicit = await s.schedule_task("report", delay=60, created_by="bot:channel7")
        assert (await s.get_audit_trail(explicit))[0]["by"] == "bot:channel7"


async def test_the_trail_lists_every_change_and_who_asked_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    async with Scheduler(url, strict_task_types=False) as s:
        tid = await s.schedule_task("report", delay=3600)
        with acting_as("ops-oncall"):
            assert await s.pause_task(tid)
            assert await s.resume_task(tid)
            assert await s.cancel_task(tid, "duplicate")
    async with Scheduler(url, strict_task_types=False) as again:
        trail = await again.get_audit_trail(tid)
    actions = [(e["action"], e.get("to"), e.get("by")) for e in trail]
    assert actions[0][0] == "created" and trail[0]["module"] == __name__
    assert ("state", "CANCELLED", None) in actions
    asked = ("pause", "resume", "cancel")
    requests = [(e["action"], e["by"], e["reason"]) for e in trail if e["action"] in asked]
    assert requests == [
        ("pause", "ops-oncall", "paused by request"),
        ("resume", "ops-oncall", "resumed by request"),
        ("cancel", "ops-oncall", "duplicate"),
    ]
    assert [e["at"] for e in trail] == sorted(e["at"] for e in trail)


def test_a_cancel_from_the_cli_records_that_process_and_user(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"

    async def schedule() -> str:
        async with Scheduler(f"sqlite:///{db}", strict_task_types=False) as s:
            return await s.schedule_task("report", delay=3600)

    tid = asyncio.run(schedule())
    done = subprocess.run(
        [sys.executable, "-m", "asched", "cancel", tid, "--store", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    shown = subprocess.run(
        [sys.executable, "-m", "asched", "audit", tid, "--json", "--store", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    entries = [orjson.loads(line) for line in shown.stdout.splitlines()]
    cancel = next(e for e in entries if e["action"] == "cancel")
    assert cancel["by"].endswith("(asched cancel)")
    assert cancel["pid"] != os.getpid()
    assert [e["to"] for e in entries if e["action"] == "state"][-1] == "CANCELLED"


def test_the_facade_attributes_tasks_to_its_caller() -> None:
    with SchedulerFacade() as facade:
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        tid = facade.schedule_task("report", delay=60)
        created = facade.get_audit_trail(tid)[0]
    assert (created["module"], created["line"]) == (__name__, line)


async def test_the_audit_file_and_its_folder_are_created(tmp_path: Path) -> None:
    log = tmp_path / "missing" / "deeper" / "audit.jsonl"
    s = Scheduler(audit_file=str(log))

    @s.task("report")
    async def report() -> None: ...

    async with s:
        tid = await s.schedule_task("report")
        await s.wait_for(tid, timeout=10)
    lines = [orjson.loads(line) for line in log.read_text().splitlines()]
    assert lines[0]["action"] == "created" and lines[0]["task_id"] == tid
    assert [e["to"] for e in lines if e["action"] == "state"] == [
        "QUEUED",
        "SCHEDULED",
        "RUNNING",
        "COMPLETED",
    ]
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    assert oct(log.parent.stat().st_mode & 0o777) == "0o700"


class Refuse:
    name = "quota"

    def before_schedule(self, task: Any) -> None:
        if task.type == "spam":
            raise ValueError("over quota")


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any]] = []

    def before_run(self, task: Any) -> None:
        self.seen.append(("before", task.id, None))
        if task.type == "blocked":
            raise RuntimeError("not today")

    def after_run(self, task: Any, outcome: Any) -> None:
        self.seen.append(("after", task.id, outcome))


async def test_middleware_can_refuse_and_sees_every_attempt() -> None:
    recorder = Recorder()
    s = Scheduler(middleware=[Refuse(), recorder], strict_task_types=False)

    @s.task("ok")
    async def ok() -> int:
        return 1

    @s.task("blocked")
    async def blocked() -> None: ...

    async with s:
        with pytest.raises(MiddlewareError, match=r"quota.*over quota"):
            await s.schedule_task("spam")
        assert await s.list_tasks() == []
        good = await s.schedule_task("ok")
        bad = await s.schedule_task("blocked", max_retries=0)
        assert await s.wait_for(good, timeout=10) == 1
        task = await s.get_task(bad)
        assert task.lifecycle is TaskLifecycle.FAILED
        assert "not today" in (task.error or "")
    assert ("after", good, TaskLifecycle.COMPLETED) in recorder.seen
    assert ("after", bad, TaskLifecycle.FAILED) in recorder.seen
