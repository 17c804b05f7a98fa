"""Throughput with the notifier, the Prometheus exporter and tracing on, against off.

Run from the repository root::

    python -m benchmarks.observability            # N = 20,000, median of 5 rounds
    python -m benchmarks.observability --quick    # smoke run

N immediate no-op tasks on uvloop and the memory store, from the first schedule
call to the last handler run, each configuration on a fresh loop in the same
process; rounds alternate the configurations so drift hits all alike.  The
rate is per second of this process's CPU time (all its threads), not of wall
time: the cost being compared is CPU, and on a shared machine wall time mostly
measures the neighbours.

* ``off``: a Scheduler with auditing off (``audit=False``; the load metrics are
  always on: they are part of every Scheduler);
* ``audit``: the default Scheduler (auditing on);
* ``notifier``: plus ``add_notifier(LoggingNotifier())`` (the alert manager
  hears every event; nothing fails, so nothing is sent);
* ``prometheus``: plus ``serve_metrics()`` on 127.0.0.1 (an ephemeral port);
* ``notifier+prometheus``: both, without auditing;
* ``audit+notifier+prometheus``: the default Scheduler plus both (the target:
  >= 0.85x of ``off``);
* ``all+tracing``: both plus ``trace_tasks()`` (with opentelemetry's default,
  non-recording provider when no SDK is set up; skipped without the API).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import statistics
import time
from collections.abc import Callable

import uvloop

from asched import LoggingNotifier, Scheduler

TARGET = 0.85
Setup = Callable[[Scheduler], None]


def _notifier(s: Scheduler) -> None:
    s.add_notifier(LoggingNotifier())


def _prometheus(s: Scheduler) -> None:
    s.serve_metrics(port=0)


def _both(s: Scheduler) -> None:
    _notifier(s)
    _prometheus(s)


def _all(s: Scheduler) -> None:
    _both(s)
    s.trace_tasks()


CONFIGS: dict[str, Setup] = {
    "off": lambda s: None,
    "audit": lambda s: None,
    "notifier": _notifier,
    "prometheus": _prometheus,
    "notifier+prometheus": _both,
    "audit+notifier+prometheus": _both,
    "all+tracing": _all,
}
#: the configurations that keep the default auditing on
AUDITED = {"audit", "audit+notifier+prometheus", "all+tracing"}


async def throughput(n: int, setup: Setup, audit: bool) -> float:
    s = Scheduler(audit=audit)
    left = n
    done = asyncio.Event()

    @s.task("noop")
    async def noop(n: int) -> None:
        nonlocal left
        left -= 1
        if left == 0:
            done.set()

    setup(s)
    async with s:
        started = time.process_time()
        for i in range(n):
            await s.schedule_task("noop", {"n": i})
        await asyncio.wait_for(done.wait(), 300)
        took = time.process_time() - started
    return n / took


def run(n: int, rounds: int, configs: dict[str, Setup]) -> dict[str, float]:
    results: dict[str, list[float]] = {name: [] for name in configs}
    for round_no in range(rounds + 1):  # round 0 is a warm-up, not counted
        names = list(configs)
        if round_no % 2:
            names.reverse()
        for name in names:
            gc.collect()
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                rate = runner.run(throughput(n, configs[name], name in AUDITED))
            if round_no:
                results[name].append(rate)
    return {name: statistics.median(rates) for name, rates in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 2,000, 2 rounds")
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n, rounds = (2_000, 2) if args.quick else (args.n, args.rounds)
    logging.basicConfig(level=logging.WARNING)
    configs = dict(CONFIGS)
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        del configs["all+tracing"]
    rates = run(n, rounds, configs)
    base = rates["off"]
    print(f"throughput, N={n}, median of {rounds} rounds (tasks per CPU second; ratio to off)")
    for name, rate in rates.items():
        print(f"  {name:<22} {rate:>10,.0f}  {rate / base:5.2f}x")
    both = rates["audit+notifier+prometheus"] / base
    print(
        f"audit+notifier+prometheus: {both:.2f}x of off (target >= {TARGET}x: "
        f"{'met' if both >= TARGET else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
