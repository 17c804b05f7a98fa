"""Forecast and next-fire speed.

* the execution forecast over 10,000 recurring schedules plus 1,000,000 pending
  one-off tasks (24 h, hourly buckets), through the public API;
* next-fire computations per second for a few cron expressions, asched's
  DST-aware trigger against croniter's ``get_next`` (the library it parses with).

    python -m benchmarks.forecast [--tasks 1000000] [--schedules 10000]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import uvloop
from croniter import croniter

from asched import Scheduler
from asched.core.triggers import CronTrigger

EXPRESSIONS = ["0 * * * *", "*/5 * * * *", "0 9 * * MON-FRI", "30 2 * * *"]


async def forecast_case(tasks: int, schedules: int) -> None:
    s = Scheduler(max_concurrency=1)

    @s.task("publish")
    async def publish() -> None:
        return None

    async with s:
        t0 = time.perf_counter()
        batch = 10_000
        for start in range(0, tasks, batch):
            await s.schedule_many(
                [
                    {"task_type": "publish", "delay": 600 + (start + i) % 86_400}
                    for i in range(batch)
                ]
            )
        for i in range(schedules):
            await s.schedule_recurring("publish", cron=f"{i % 60} * * * *", timezone="UTC")
        setup = time.perf_counter() - t0
        timings = []
        for _ in range(3):
            t1 = time.perf_counter()
            forecast = await s.get_task_execution_forecast(24)
            timings.append(time.perf_counter() - t1)
        await s.stop(grace_s=0)
    print(f"forecast over {schedules:,} schedules + {tasks:,} pending tasks, 24 h hourly:")
    print(
        f"  {min(timings):.3f} s best of 3 ({forecast['total']:,} runs in "
        f"{len(forecast['buckets'])} buckets; setup {setup:.1f} s)"
    )


def next_fire_case() -> None:
    start = datetime(2027, 3, 20, tzinfo=UTC).timestamp()
    print("next-fire computations per second (Europe/Madrid, walking forward):")
    for expression in EXPRESSIONS:
        trigger = CronTrigger(expression, "Europe/Madrid")
        n, at, t0 = 20_000, start, time.perf_counter()
        for _ in range(n):
            at = trigger.next_fire(at) or at
        ours = n / (time.perf_counter() - t0)
        it = croniter(expression, datetime.fromtimestamp(start, UTC))
        m, t0 = 2_000, time.perf_counter()
        for _ in range(m):
            it.get_next(float)
        theirs = m / (time.perf_counter() - t0)
        print(
            f"  {expression:<16} asched {ours:>10,.0f}/s   croniter {theirs:>9,.0f}/s   "
            f"ratio {ours / theirs:5.1f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--schedules", type=int, default=10_000)
    args = parser.parse_args()
    next_fire_case()
    uvloop.run(forecast_case(args.tasks, args.schedules))


if __name__ == "__main__":
    main()
