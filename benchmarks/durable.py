"""Durable scheduling on SQLite, against its peers and its limits, in one run.

1. sequential ``await schedule_task(...)`` (each call on disk before the next)
   against a bare reference -- stdlib ``sqlite3`` on its own thread, one INSERT
   and COMMIT per call, one thread hop per commit -- and against APScheduler 3's
   SQLAlchemy job store (``add_job`` one at a time);
2. ``schedule_many`` in batches of 1,000;
3. end to end: N no-op tasks scheduled and run, SQLite (leases on, the default)
   against the memory store;
4. two worker processes on one file against one, running 10 ms I/O tasks;
5. end to end on SQLite with per-key limits on (each task has one of --keys
   concurrency keys, limit 1 per key, held as slots in the store) against the
   same tasks without keys, in the same run.

    python -m benchmarks.durable [--n 20000] [--seq-n 3000] [--aps-n 1000]
                                 [--io-n 3000] [--keys 200] [--repeat 3] [--only keys|e2e]

Needs the ``bench`` extra (APScheduler 3, SQLAlchemy) and uvloop.  Medians of
--repeat rounds after a discarded warm-up; every round uses a fresh file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import uvloop
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from asched import Scheduler

_done: asyncio.Event | None = None
_count = 0
_target = 0


async def noop() -> None:
    global _count
    _count += 1
    if _count == _target and _done is not None:
        _done.set()


def _reset(n: int) -> asyncio.Event:
    global _done, _count, _target
    _done, _count, _target = asyncio.Event(), 0, n
    return _done


def _db(name: str) -> str:
    return str(Path(tempfile.mkdtemp(prefix="asched-bench-")) / name)


# -- 1. sequential durable calls ------------------------------------------------------


async def asched_sequential(n: int) -> float:
    s = Scheduler(f"sqlite:///{_db('seq.db')}", result_ttl_s=None)
    s.register("noop", noop)
    async with s:
        start = time.perf_counter()
        for _ in range(n):
            await s.schedule_task("noop", delay=3600)
        rate = n / (time.perf_counter() - start)
        await s.stop(grace_s=0)
    return rate


async def bare_one_hop_per_commit(n: int) -> float:
    """The floor a durable call can reach here: one INSERT + COMMIT per call, on a
    dedicated thread, one hop there and back; a record of the same size."""
    pool = ThreadPoolExecutor(max_workers=1)
    path = _db("bare.db")

    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, due REAL, record TEXT)")
        return db

    db = pool.submit(connect).result()
    record = orjson.dumps({"id": "x" * 11, "type": "noop", "data": {}, "pad": "p" * 700}).decode()

    def insert(i: int) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?, ?, ?)", (str(i), 0.0, record))
        db.execute("COMMIT")

    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    for i in range(n):
        await loop.run_in_executor(pool, insert, i)
    rate = n / (time.perf_counter() - start)
    pool.submit(db.close).result()
    pool.shutdown()
    return rate


def _aps(path: str) -> AsyncIOScheduler:
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    return AsyncIOScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{path}")},
        job_defaults={"misfire_grace_time": 3600, "coalesce": False, "max_instances": 10**6},
    )


async def aps_sequential(n: int) -> float:
    aps = _aps(_db("aps.db"))
    aps.start()
    later = datetime.now(UTC) + timedelta(hours=1)
    start = time.perf_counter()
    for _ in range(n):
        aps.add_job(noop, "date", run_date=later)
    rate = n / (time.perf_counter() - start)
    aps.shutdown(wait=False)
    return rate


# -- 2 and 3. batches, end to end ------------------------------------------------------


async def asched_batches(n: int) -> float:
    s = Scheduler(f"sqlite:///{_db('many.db')}", result_ttl_s=None)
    s.register("noop", noop)
    async with s:
        start = time.perf_counter()
        for i in range(0, n, 1000):
            await s.schedule_many([{"task_type": "noop", "delay": 3600}] * min(1000, n - i))
        rate = n / (time.perf_counter() - start)
        await s.stop(grace_s=0)
    return rate


async def asched_end_to_end(n: int, store: str, keys: int = 0) -> float:
    """``keys``: each task gets one of that many concurrency keys (limit 1 each)."""
    s = Scheduler(store if store == "memory://" else f"sqlite:///{_db('e2e.db')}")
    s.register("noop", noop)
    done = _reset(n)
    async with s:
        start = time.perf_counter()
        if keys:
            await asyncio.gather(
                *(s.schedule_task("noop", concurrency_key=f"k{i % keys}") for i in range(n))
            )
        else:
            await asyncio.gather(*(s.schedule_task("noop") for _ in range(n)))
        await done.wait()
        return n / (time.perf_counter() - start)


def e2e_rates(n: int, repeat: int) -> tuple[float, float]:
    """(sqlite, memory) end to end, rounds interleaved so both see the same load."""
    sqlite: list[float] = []
    memory: list[float] = []
    for _ in range(repeat + 1):
        sqlite.append(uvloop.run(asched_end_to_end(n, "sqlite")))
        memory.append(uvloop.run(asched_end_to_end(n, "memory://")))
    return statistics.median(sqlite[1:]), statistics.median(memory[1:])


def print_e2e(n: int, sqlite: float, memory: float) -> None:
    print(f"3. end to end, {n:,} no-op tasks, tasks/s")
    print(f"   asched sqlite (leases on)              {sqlite:>10,.0f}")
    print(f"   asched memory                          {memory:>10,.0f}")
    print(f"   sqlite / memory                        {sqlite / memory:>10.2f}x")


def keyed_rates(n: int, keys: int, repeat: int) -> tuple[float, float]:
    """(without keys, with per-key limits), rounds interleaved so both see the same load."""
    off: list[float] = []
    on: list[float] = []
    for _ in range(repeat + 1):
        off.append(uvloop.run(asched_end_to_end(n, "sqlite")))
        on.append(uvloop.run(asched_end_to_end(n, "sqlite", keys)))
    return statistics.median(off[1:]), statistics.median(on[1:])


def print_keyed(n: int, keys: int, off: float, on: float) -> None:
    print(f"5. end to end on sqlite, {n:,} no-op tasks, tasks/s")
    print(f"   no concurrency keys                    {off:>10,.0f}")
    print(f"   {keys} keys, limit 1 each (store slots) {on:>10,.0f}")
    print(f"   limits on / off                        {on / off:>10.2f}x")


# -- 4. worker processes ---------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import asyncio, os, sys
    from asched import Scheduler

    db, stop_file = sys.argv[1], sys.argv[2]
    s = Scheduler(f"sqlite:///{db}", max_concurrency=20, poll_interval_s=0.05)

    @s.task("io")
    async def io() -> None:
        await asyncio.sleep(0.01)

    async def main() -> None:
        async with s:
            while not os.path.exists(stop_file):
                await asyncio.sleep(0.02)

    asyncio.run(main())
    """
)


def workers_rate(n: int, workers: int) -> float:
    folder = Path(tempfile.mkdtemp(prefix="asched-bench-"))
    db, stop, script = folder / "io.db", folder / "stop", folder / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(db), str(stop)], env=env)
        for _ in range(workers)
    ]
    time.sleep(1.5)  # started and idle
    uvloop.run(_produce(str(db), n))
    start = time.perf_counter()
    conn = sqlite3.connect(db, timeout=30)
    query = "SELECT count(*) FROM tasks WHERE lifecycle = 'COMPLETED'"
    while conn.execute(query).fetchone()[0] < n:
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    conn.close()
    stop.touch()
    for proc in procs:
        proc.wait(timeout=60)
    return n / elapsed


async def _produce(db: str, n: int) -> None:
    producer = Scheduler(f"sqlite:///{db}", strict_task_types=False)
    async with producer:
        for i in range(0, n, 1000):
            await producer.schedule_many([{"task_type": "io"}] * min(1000, n - i))


# -- the run -----------------------------------------------------------------------------


def median_rate(make: Callable[[], Awaitable[float]], repeat: int) -> float:
    rates = [uvloop.run(make()) for _ in range(repeat + 1)]
    return statistics.median(rates[1:])


def median_sync(make: Callable[[], float], repeat: int) -> float:
    return statistics.median(make() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--seq-n", type=int, default=3_000)
    parser.add_argument("--aps-n", type=int, default=1_000)
    parser.add_argument("--io-n", type=int, default=3_000)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["keys", "e2e"], help="run one section alone")
    args = parser.parse_args()
    n, r = args.n, args.repeat
    if args.only == "keys":
        print_keyed(n, args.keys, *keyed_rates(n, args.keys, r))
        return
    if args.only == "e2e":
        print_e2e(n, *e2e_rates(n, r))
        return
    seq = median_rate(lambda: asched_sequential(args.seq_n), r)
    bare = median_rate(lambda: bare_one_hop_per_commit(args.seq_n), r)
    aps = median_rate(lambda: aps_sequential(args.aps_n), r)
    many = median_rate(lambda: asched_batches(n), r)
    sqlite_e2e, memory_e2e = e2e_rates(n, r)
    one = median_sync(lambda: workers_rate(args.io_n, 1), r)
    two = median_sync(lambda: workers_rate(args.io_n, 2), r)
    keyed = keyed_rates(n, args.keys, r)
    print(f"medians of {r} rounds (uvloop); {os.cpu_count()} cores")
    print("1. sequential durable schedule_task, tasks/s")
    print(f"   asched sqlite                          {seq:>10,.0f}")
    print(f"   bare sqlite3, one hop per commit       {bare:>10,.0f}   asched {seq / bare:.2f}x")
    print(f"   APScheduler 3 SQLAlchemy add_job       {aps:>10,.0f}   asched {seq / aps:.1f}x")
    print(f"2. schedule_many, 1,000 per call          {many:>10,.0f} tasks/s")
    print_e2e(n, sqlite_e2e, memory_e2e)
    print(f"4. worker processes, {args.io_n:,} tasks of 10 ms I/O, concurrency 20 each")
    print(f"   one worker                             {one:>10,.0f} tasks/s")
    print(f"   two workers                            {two:>10,.0f} tasks/s   {two / one:.2f}x")
    print_keyed(n, args.keys, *keyed)


if __name__ == "__main__":
    main()
