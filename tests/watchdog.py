"""A test that hangs fails with the stacks that explain it, instead of stalling the run.

After ``ASCHED_TEST_HANG_S`` seconds (default 180) in one test, every thread's
stack and every asyncio task's stack go to stderr, and the test's event loop has
its tasks cancelled, so the test ends with an error and the run goes on.  If the
loop itself is blocked and nothing ends within another 60 seconds, the process
exits with status 3 rather than wait for ever.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import os
import sys
import threading
from collections.abc import Iterator

import pytest

HANG_S = float(os.environ.get("ASCHED_TEST_HANG_S", "180"))
LAST_CHANCE_S = 60.0


def _dump_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    print(f"\n--- {len(tasks)} asyncio tasks ---", file=sys.stderr)
    for task in tasks:
        print(f"* {task!r}", file=sys.stderr)
        task.print_stack(limit=12, file=sys.stderr)
    for task in tasks:
        task.cancel()


def _open_loops() -> list[asyncio.AbstractEventLoop]:
    # Only when a test hangs: the loop belongs to another thread's context.
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, asyncio.AbstractEventLoop) and not obj.is_closed()
    ]


class Watchdog:
    def __init__(self, test_id: str) -> None:
        self.test_id = test_id
        self.finished = threading.Event()

    def run(self) -> None:
        if self.finished.wait(HANG_S):
            return
        print(f"\n=== {self.test_id} still running after {HANG_S:.0f} s ===", file=sys.stderr)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        for loop in _open_loops():
            loop.call_soon_threadsafe(_dump_tasks, loop)
        if not self.finished.wait(LAST_CHANCE_S):
            print(f"=== {self.test_id} did not end when cancelled: exiting ===", file=sys.stderr)
            sys.stderr.flush()
            os._exit(3)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    dog = Watchdog(item.nodeid)
    threading.Thread(target=dog.run, name="test-watchdog", daemon=True).start()
    try:
        return (yield)
    finally:
        dog.finished.set()
