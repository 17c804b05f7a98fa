"""Stopping a worker process without blocking the loop: wait, SIGTERM, SIGKILL, reap."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from multiprocessing.process import BaseProcess

logger = logging.getLogger(__name__)

REAP_S = 5.0  # how long a SIGKILLed process may take to vanish before we give up on it


async def stop_process(process: BaseProcess, patience_s: float, grace_s: float) -> int | None:
    """Wait ``patience_s`` for the process to exit, then SIGTERM, then SIGKILL; reap it."""
    steps: tuple[tuple[Callable[[], None] | None, float], ...] = (
        (None, patience_s),
        (process.terminate, grace_s),
        (process.kill, REAP_S),
    )
    for send, wait_s in steps:
        if send is not None:
            send()
        if await _exited(process, wait_s):
            # The sentinel fired, so the process is gone or a few instructions from
            # becoming a zombie: this join does not wait in practice.
            process.join(REAP_S)
            exitcode = process.exitcode
            if exitcode is not None:
                process.close()
            return exitcode
    logger.warning("worker process %s survived SIGKILL; leaving it", process.pid)
    return None


async def _exited(process: BaseProcess, timeout_s: float) -> bool:
    """Wait, without blocking the loop, until the process has exited."""
    if process.exitcode is not None:
        return True
    if timeout_s <= 0:
        return False
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()
    sentinel = process.sentinel
    loop.add_reader(sentinel, _set_done, exited)
    try:
        async with asyncio.timeout(timeout_s):
            await exited
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(sentinel)
    return True


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
