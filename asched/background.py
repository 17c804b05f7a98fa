"""Stopping background coroutines for sure.

A background loop (a poller, a flusher, a pub/sub listener) is stopped by
cancelling its task.  On Python 3.11 a cancel can be lost: ``asyncio.wait_for``
returns the inner result when the cancel arrives just as the inner awaitable
completes, and libraries use it on their socket writes (redis-py does when a
socket timeout is set).  The loop then carries on as if nothing was asked, and
whoever awaits it waits for ever.  :func:`cancel_and_wait` cancels again until
each task has ended.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: How long a task gets to end (and clean up) after a cancel before it is sent
#: another: long enough for a clean-up that talks to a server, short enough that
#: a lost cancel costs a stop no more than this.
RECANCEL_AFTER_S = 1.0


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel ``tasks`` (None ones are skipped) and wait until every one has ended;
    their errors are taken, not raised."""
    pending = {task for task in tasks if task is not None and not task.done()}
    ended = [task for task in tasks if task is not None and task.done()]
    while pending:
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER_S)
        ended.extend(done)
    for task in ended:
        if not task.cancelled():
            task.exception()  # taken, so asyncio does not log it as never retrieved
