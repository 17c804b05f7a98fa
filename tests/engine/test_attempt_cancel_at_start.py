"""An attempt cancelled in the same loop turn it was started in, before its first
step, still ends through the engine (it once stayed RUNNING, holding its slot)."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest

from asched.config import SchedulerConfig
from asched.engine.attempts import CANCEL_REQUESTED, LEASE_LOST, Attempts
from asched.engine.registry import Registry
from asched.model import Task, TaskLifecycle
from asched.testing import FakeClock


class Sink:
    def __init__(self) -> None:
        self.heard: list[tuple[str, str]] = []

    def attempt_succeeded(self, task: Task, result: Any) -> None:
        self.heard.append(("succeeded", task.id))

    def attempt_failed(self, task: Task, error: str, exc: BaseException) -> None:
        self.heard.append(("failed", task.id))

    def attempt_abandoned(self, task: Task) -> None:
        self.heard.append(("abandoned", task.id))

    def attempt_interrupted(self, task: Task) -> None:
        self.heard.append(("interrupted", task.id))

    def attempt_lost(self, task: Task) -> None:
        self.heard.append(("lost", task.id))


def _running(task_id: str) -> Task:
    task = Task(task_id, "job", b"{}", created_s=0.0, due_s=0.0)
    for state in (TaskLifecycle.QUEUED, TaskLifecycle.SCHEDULED, TaskLifecycle.RUNNING):
        task.transition(state, 0.0, None)
    return task


@pytest.mark.parametrize(
    ("why", "heard"), [(CANCEL_REQUESTED, "interrupted"), (LEASE_LOST, "lost")]
)
async def test_a_cancel_before_the_first_step_is_settled_and_the_handler_never_runs(
    why: str, heard: str
) -> None:
    ran: list[str] = []
    registry = Registry()

    async def job() -> None:
        ran.append("job")

    registry.register("job", job)
    sink = Sink()
    attempts = Attempts(SchedulerConfig(), registry, sink)
    await attempts.start()
    task = _running("t1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "coroutine ... was never awaited" would fail
        assert attempts.begin(task, 0.0, FakeClock()) is None
        assert attempts.cancel(task, why)  # same turn: the attempt has not stepped yet
        handle = task._handle
        assert isinstance(handle, asyncio.Task)
        await handle
    assert sink.heard == [(heard, "t1")] and ran == []
    await attempts.shutdown()


async def test_a_cancel_after_the_first_step_still_cancels_the_handler() -> None:
    registry = Registry()
    started = asyncio.Event()

    async def job() -> None:
        started.set()
        await asyncio.Event().wait()

    registry.register("job", job)
    sink = Sink()
    attempts = Attempts(SchedulerConfig(), registry, sink)
    await attempts.start()
    task = _running("t2")
    attempts.begin(task, 0.0, FakeClock())
    await started.wait()
    assert attempts.cancel(task, CANCEL_REQUESTED)
    handle = task._handle
    assert isinstance(handle, asyncio.Task)
    await handle
    assert sink.heard == [("interrupted", "t2")]
    await attempts.shutdown()
