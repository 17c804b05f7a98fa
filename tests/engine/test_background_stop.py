"""Background loops stop even when a cancel is lost on the way.

On Python 3.11, ``asyncio.wait_for`` drops a cancel that arrives just as its
inner awaitable completes (redis-py's socket writes hit this), and the loop
that was asked to stop carries on.  A stop must not wait for it for ever.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from asched import Scheduler, background
from asched.background import cancel_and_wait
from asched.stores import open_store


async def test_a_loop_that_loses_a_cancel_is_cancelled_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(background, "RECANCEL_AFTER_S", 0.01)
    lost = 0

    async def loop_forever() -> None:
        nonlocal lost
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if lost == 0:  # the first cancel goes missing, as in wait_for
                    lost += 1
                    continue
                raise

    task = asyncio.ensure_future(loop_forever())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task), 5)
    assert task.cancelled() and lost == 1


async def test_errors_are_taken_and_finished_or_missing_tasks_are_fine() -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    failed = asyncio.ensure_future(fail())
    await asyncio.sleep(0)
    sleeper = asyncio.ensure_future(asyncio.sleep(3600))
    await cancel_and_wait(failed, None, sleeper)
    assert failed.done() and sleeper.cancelled()
    assert isinstance(failed.exception(), RuntimeError)


async def test_stop_ends_though_the_poller_loses_a_cancel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared-store poller is inside a store call that swallows the cancel once,
    as a client library's ``wait_for`` would: ``stop()`` still ends."""
    monkeypatch.setattr(background, "RECANCEL_AFTER_S", 0.05)
    store = open_store(f"sqlite:///{tmp_path / 'shared.db'}")
    inside = asyncio.Event()
    lost = 0

    async def take_control_requests(owner: str) -> list[dict[str, Any]]:
        nonlocal lost
        inside.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if lost:
                raise
            lost += 1
        return []

    monkeypatch.setattr(store, "take_control_requests", take_control_requests)
    scheduler = Scheduler(store=store, poll_interval_s=0.01)
    await scheduler.start()
    await asyncio.wait_for(inside.wait(), 10)
    await asyncio.wait_for(scheduler.stop(), 10)
    assert lost == 1
