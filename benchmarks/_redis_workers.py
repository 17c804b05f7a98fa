"""Drain with worker *processes*: each peer's worker run in 1 or 2 child processes.

Every child builds the peer, says it is ready, waits for the go, then runs the
peer's worker until told to stop.  Handlers count into the child's own shared
integer (no lock: one writer each), and the parent sums them every 2 ms; the
time runs from the go to the last of ``n`` handler calls, so worker start-up
(connecting, registering) is inside it, as in the in-process drain.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from benchmarks import _redis_peers

_SPAWN = multiprocessing.get_context("spawn")


def _child(
    kind: str, url: str, concurrency: int, hits: Any, ready: Any, go: Any, stop: Any
) -> None:
    import uvloop

    from benchmarks.redis import peer_kinds

    peer = peer_kinds()[kind](url, concurrency)
    _redis_peers.COUNTER.shared = hits

    async def until_stopped() -> None:
        while not stop.is_set():  # noqa: ASYNC110 - a process-shared event
            await asyncio.sleep(0.005)

    async def main() -> None:
        ready.set()
        while not go.is_set():  # noqa: ASYNC110 - a process-shared event
            await asyncio.sleep(0.001)
        try:
            await peer.run_worker(until_stopped)
        finally:
            await peer.close()

    uvloop.run(main())


def drain_in_processes(kind: str, url: str, concurrency: int, n: int, processes: int) -> float:
    """Tasks per second for ``n`` tasks already enqueued, run by ``processes`` workers."""
    go, stop = _SPAWN.Event(), _SPAWN.Event()
    counters: list[Synchronized[int]] = [_SPAWN.Value("q", 0, lock=False) for _ in range(processes)]
    readies = [_SPAWN.Event() for _ in range(processes)]
    children = [
        _SPAWN.Process(target=_child, args=(kind, url, concurrency, hits, ready, go, stop))
        for hits, ready in zip(counters, readies, strict=True)
    ]
    for child in children:
        child.start()
    try:
        for ready in readies:
            if not ready.wait(60):
                raise RuntimeError(f"{kind}: a worker process did not start")
        start = time.perf_counter()
        go.set()
        deadline = start + 300
        while sum(c.value for c in counters) < n:
            if time.perf_counter() > deadline or not all(c.is_alive() for c in children):
                raise RuntimeError(f"{kind}: workers ran {sum(c.value for c in counters)} of {n}")
            time.sleep(0.002)
        return n / (time.perf_counter() - start)
    finally:
        stop.set()
        for child in children:
            child.join(30)
            if child.is_alive():
                child.kill()
