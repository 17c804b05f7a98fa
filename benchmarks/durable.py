"""Durable scheduling: asched's SQLite store against APScheduler 3's SQLAlchemy
job store on SQLite, and against asched's own memory store, in one run.

1. durable scheduling rate: tasks 1 h ahead, acknowledged (on disk) when the
   call returns — asched with concurrent ``schedule_task`` calls (group commit)
   and with ``schedule_many``; APScheduler ``add_job`` one at a time;
2. end to end: schedule N no-op tasks due now and run them all — asched on
   SQLite, asched in memory, APScheduler with the SQLAlchemy store.

    python -m benchmarks.durable [--n 20000] [--aps-n 2000] [--repeat 3]

Needs the ``bench`` extra (APScheduler 3, SQLAlchemy).  Medians of --repeat
rounds after a discarded warm-up; each round uses a fresh database file.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

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


async def asched_schedule(n: int, batch: bool) -> float:
    s = Scheduler(f"sqlite:///{_db('a.db')}")
    s.register("noop", noop)
    async with s:
        start = time.perf_counter()
        if batch:
            for i in range(0, n, 1000):
                await s.schedule_many([{"task_type": "noop", "delay": 3600}] * min(1000, n - i))
        else:
            await asyncio.gather(*(s.schedule_task("noop", delay=3600) for _ in range(n)))
        rate = n / (time.perf_counter() - start)
        await s.stop(grace_s=0)
    return rate


async def asched_end_to_end(n: int, store: str) -> float:
    s = Scheduler(store if store == "memory://" else f"sqlite:///{_db('e.db')}")
    s.register("noop", noop)
    done = _reset(n)
    async with s:
        start = time.perf_counter()
        await asyncio.gather(*(s.schedule_task("noop") for _ in range(n)))
        await done.wait()
        return n / (time.perf_counter() - start)


def _aps(path: str) -> AsyncIOScheduler:
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    return AsyncIOScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{path}")},
        job_defaults={"misfire_grace_time": 3600, "coalesce": False, "max_instances": 10**6},
    )


async def aps_schedule(n: int) -> float:
    aps = _aps(_db("aps.db"))
    aps.start()
    later = datetime.now(UTC) + timedelta(hours=1)
    start = time.perf_counter()
    for _ in range(n):
        aps.add_job(noop, "date", run_date=later)
    rate = n / (time.perf_counter() - start)
    aps.shutdown(wait=False)
    return rate


async def aps_end_to_end(n: int) -> float:
    aps = _aps(_db("apse.db"))
    done = _reset(n)
    aps.start()
    start = time.perf_counter()
    now = datetime.now(UTC)
    for _ in range(n):
        aps.add_job(noop, "date", run_date=now)
    await done.wait()
    rate = n / (time.perf_counter() - start)
    aps.shutdown(wait=False)
    return rate


def median_rate(make: Callable[[], Awaitable[float]], repeat: int) -> float:
    rates = [uvloop.run(make()) for _ in range(repeat + 1)]
    return statistics.median(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--aps-n", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, k, r = args.n, args.aps_n, args.repeat
    rows = {
        "asched sqlite schedule_task (concurrent)": median_rate(
            lambda: asched_schedule(n, False), r
        ),
        "asched sqlite schedule_many (1,000/call)": median_rate(
            lambda: asched_schedule(n, True), r
        ),
        "APScheduler 3 SQLAlchemy add_job": median_rate(lambda: aps_schedule(k), r),
    }
    e2e = {
        "asched sqlite": median_rate(lambda: asched_end_to_end(n, "sqlite"), r),
        "asched memory": median_rate(lambda: asched_end_to_end(n, "memory://"), r),
        "APScheduler 3 SQLAlchemy": median_rate(lambda: aps_end_to_end(k), r),
    }
    aps = rows["APScheduler 3 SQLAlchemy add_job"]
    print(f"median of {r} rounds; asched N={n:,}, APScheduler N={k:,} (uvloop, 2 cores)")
    print("1. durable scheduling (acknowledged = committed), tasks/s")
    for name, rate in rows.items():
        print(f"   {name:<44} {rate:>10,.0f}  {1e6 / rate:8.1f} µs/task  {rate / aps:6.1f}x APS")
    print("2. end to end: schedule + run no-op tasks, tasks/s")
    for name, rate in e2e.items():
        print(f"   {name:<44} {rate:>10,.0f}")
    print(
        f"   sqlite / memory {e2e['asched sqlite'] / e2e['asched memory']:.2f}x;  "
        f"sqlite / APScheduler {e2e['asched sqlite'] / e2e['APScheduler 3 SQLAlchemy']:.1f}x"
    )


if __name__ == "__main__":
    main()
