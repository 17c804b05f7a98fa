"""Overhead of the scheduling strategies per task, in one run.

N immediate no-op tasks (spread over 20 channels) end to end through asched's
memory store, first plain, then with a retry policy, a circuit breaker and fair
share switched on.  Prints tasks/s for each (median of --repeat rounds) and the
ratio strategies/plain.

    python -m benchmarks.strategies [--n 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import uvloop

from asched import RetryPolicy, Scheduler

CHANNELS = 20


async def one_round(n: int, with_strategies: bool) -> float:
    options = {"fair_share": True} if with_strategies else {}
    s = Scheduler(key_concurrency=n, **options)
    done = asyncio.Event()
    count = 0

    async def noop(channel: str) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    if with_strategies:
        s.configure_breaker("api", failure_threshold=50, recovery_s=30)
        s.register("noop", noop, retry=RetryPolicy(max_retries=3, jitter="full"), breaker="api")
    else:
        s.register("noop", noop)
    async with s:
        start = time.perf_counter()
        for i in range(n):
            channel = f"c{i % CHANNELS}"
            await s.schedule_task("noop", {"channel": channel}, concurrency_key=channel)
        await done.wait()
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.repeat + 1):  # the first round warms up and is discarded
        for flag in (False, True):
            results[flag].append(uvloop.run(one_round(args.n, flag)))
    plain = statistics.median(results[False][1:])
    strat = statistics.median(results[True][1:])
    print(f"N={args.n} tasks over {CHANNELS} channels, median of {args.repeat} rounds (uvloop)")
    print(f"  plain                              {plain:>10,.0f} tasks/s")
    print(f"  retry policy + breaker + fair share {strat:>9,.0f} tasks/s")
    print(
        f"  ratio strategies/plain             {strat / plain:>10.2f}x "
        f"(overhead {(1 / strat - 1 / plain) * 1e6:.2f} µs per task)"
    )


if __name__ == "__main__":
    main()
