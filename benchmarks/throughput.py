"""asched against a bare reference engine and APScheduler 3, on uvloop.

Run from the repository root::

    python -m benchmarks.throughput            # full run, median of 3 rounds
    python -m benchmarks.throughput --quick    # smoke run, small N
    python -m benchmarks.throughput --json     # the table, then the figures as JSON
    python -m benchmarks.throughput --profile throughput   # pyinstrument, top self time

Three figures, each the median of ``--repeat`` rounds after one discarded
warm-up round (benchmarks/README.md explains them):

1. throughput: N immediate no-op tasks, first schedule call to last handler run;
2. scheduling cost: µs per call and bytes per pending task, 1 h ahead;
3. lateness: how long after its due time each handler starts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import logging
import math
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from heapq import heappop, heappush
from importlib.metadata import version
from typing import Any, ClassVar, TypeVar

import uvloop
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]

from asched import Scheduler, SchedulerConfig

T = TypeVar("T")
Handler = Callable[..., Coroutine[Any, Any, None]]
Figures = dict[str, Any]

MEDIUM = 2  # TaskPriority.MEDIUM, asched's default, for the reference engine
SEED = 20240601
WAIT_LIMIT_S = 300.0


@dataclass(frozen=True)
class Params:
    throughput_n: int = 20_000
    pending_n: int = 100_000
    lateness_n: int = 2_000
    lateness_spread_s: float = 5.0
    # Every engine has finished scheduling before the first task falls due.
    lateness_lead_s: float = 1.0
    repeat: int = 3


QUICK = Params(
    throughput_n=1_000,
    pending_n=1_000,
    lateness_n=100,
    lateness_spread_s=0.3,
    lateness_lead_s=0.2,
)

TARGETS = {
    "throughput_vs_limit": 0.75,
    "throughput_vs_apscheduler": 5.0,
    "schedule_us": 6.0,
    "bytes_per_pending": 500,
}


# -- shared pieces -------------------------------------------------------------------


class Countdown:
    """Counts handler runs; ``done`` is set by the last expected one."""

    __slots__ = ("done", "left")

    def __init__(self, expected: int) -> None:
        self.left = expected
        self.done = asyncio.Event()

    def tick(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.done.set()

    async def wait(self, what: str) -> None:
        try:
            await asyncio.wait_for(self.done.wait(), WAIT_LIMIT_S)
        except TimeoutError:
            raise RuntimeError(f"{what}: {self.left} tasks never ran") from None


def noop_handler(countdown: Countdown) -> Handler:
    """The one handler body every engine runs in the throughput case."""

    async def noop(n: int) -> None:
        countdown.tick()

    return noop


def pending_handler() -> Handler:
    async def post(channel_id: str, n: int) -> None:
        return None

    return post


def lateness_handler(countdown: Countdown, lateness: list[float]) -> Handler:
    async def record(due: float) -> None:
        lateness.append(time.time() - due)
        countdown.tick()

    return record


class Stopwatch:
    """Times the measured region.  With ``--profile``, pyinstrument samples that
    region only, not setup or shutdown."""

    profiler: ClassVar[Any] = None

    def __enter__(self) -> Stopwatch:
        if Stopwatch.profiler is not None:
            Stopwatch.profiler.start()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.elapsed = time.perf_counter() - self.started
        if Stopwatch.profiler is not None:
            Stopwatch.profiler.stop()


async def drain() -> None:
    """Return once every callback queued so far on the loop has run."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(done.set_result, None)
    await done


def run_on_uvloop(make: Callable[[], Awaitable[T]]) -> T:
    """A fresh uvloop loop per measurement; a full collection right before it."""

    async def main() -> T:
        gc.collect()
        return await make()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


def new_apscheduler() -> AsyncIOScheduler:
    # No misfire limit and no coalescing: every job runs, however late.
    return AsyncIOScheduler(
        timezone=UTC,
        job_defaults={"misfire_grace_time": None, "coalesce": False, "max_instances": 1},
    )


#: ``--no-audit``: measure the engine without the audit middleware (on by default)
AUDIT = {"on": True}


def new_asched(name: str, handler: Handler) -> Scheduler:
    scheduler = Scheduler(audit=AUDIT["on"])
    scheduler.register(name, handler)
    return scheduler


# -- the reference engine -----------------------------------------------------------


class _Job:
    __slots__ = ("cancelled", "error", "fn", "handle", "kwargs")

    def __init__(self, fn: Handler, kwargs: dict[str, Any]) -> None:
        self.fn = fn
        self.kwargs = kwargs
        self.handle: asyncio.Task[None] | None = None
        self.cancelled = False
        self.error: Exception | None = None


class BareEngine:
    """The floor for an engine that can cancel running work.

    Due jobs wait in a heap of (priority, due, seq, job); future ones in a heap
    by due time, woken by a single ``loop.call_at``.  Each job runs as its own
    asyncio.Task, at most ``max_concurrency`` at once (asched's default cap).
    Times are loop time.  No validation, persistence, states or events.
    """

    def __init__(self, max_concurrency: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready: list[tuple[int, float, int, _Job]] = []
        self._timers: list[tuple[float, int, int, _Job]] = []
        self._seq = itertools.count()
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at = math.inf
        self._running = 0
        self._limit = max_concurrency

    def schedule(
        self, fn: Handler, kwargs: dict[str, Any], due: float | None = None, priority: int = MEDIUM
    ) -> _Job:
        job = _Job(fn, kwargs)
        now = self._loop.time()
        if due is None or due <= now:
            heappush(self._ready, (priority, now if due is None else due, next(self._seq), job))
            if self._wake_at > now:
                self._arm(now)
        else:
            heappush(self._timers, (due, next(self._seq), priority, job))
            if due < self._wake_at:
                self._arm(due)
        return job

    def cancel(self, job: _Job) -> None:
        job.cancelled = True
        if job.handle is not None:
            job.handle.cancel()

    def _arm(self, when: float) -> None:
        if self._wake is not None:
            self._wake.cancel()
        self._wake_at = when
        self._wake = self._loop.call_at(when, self._on_wake)

    def _on_wake(self) -> None:
        self._wake, self._wake_at = None, math.inf
        now = self._loop.time()
        timers = self._timers
        while timers and timers[0][0] <= now:
            due, seq, priority, job = heappop(timers)
            heappush(self._ready, (priority, due, seq, job))
        if timers:
            self._arm(timers[0][0])
        self._fill()

    def _fill(self) -> None:
        ready = self._ready
        while ready and self._running < self._limit:
            job = heappop(ready)[3]
            if not job.cancelled:
                self._running += 1
                job.handle = self._loop.create_task(self._run(job))

    async def _run(self, job: _Job) -> None:
        try:
            await job.fn(**job.kwargs)
        except Exception as exc:
            job.error = exc
        finally:
            self._running -= 1
            job.handle = None
            self._fill()


# -- 1. throughput --------------------------------------------------------------------


async def _time_to_done(fill: Callable[[], Awaitable[None]], countdown: Countdown) -> float:
    """Seconds from the first schedule call until the last handler has run."""
    with Stopwatch() as watch:
        await fill()
        await countdown.wait("throughput")
    return watch.elapsed


async def throughput_limit(n: int) -> float:
    countdown = Countdown(n)
    noop = noop_handler(countdown)
    engine = BareEngine(SchedulerConfig().max_concurrency)

    async def fill() -> None:
        for i in range(n):
            engine.schedule(noop, {"n": i})

    return await _time_to_done(fill, countdown)


async def throughput_asched(n: int) -> float:
    countdown = Countdown(n)
    async with new_asched("noop", noop_handler(countdown)) as scheduler:

        async def fill() -> None:
            for i in range(n):
                await scheduler.schedule_task("noop", {"n": i})

        return await _time_to_done(fill, countdown)


async def throughput_asched_batch(n: int) -> float:
    countdown = Countdown(n)
    async with new_asched("noop", noop_handler(countdown)) as scheduler:

        async def fill() -> None:
            await scheduler.schedule_many(
                [{"task_type": "noop", "task_data": {"n": i}} for i in range(n)]
            )

        return await _time_to_done(fill, countdown)


async def throughput_apscheduler(n: int) -> float:
    countdown = Countdown(n)
    noop = noop_handler(countdown)
    scheduler = new_apscheduler()
    scheduler.start()
    try:

        async def fill() -> None:
            for i in range(n):
                scheduler.add_job(noop, "date", kwargs={"n": i})  # run_date: now

        return await _time_to_done(fill, countdown)
    finally:
        await _stop_apscheduler(scheduler)


async def _stop_apscheduler(scheduler: AsyncIOScheduler) -> None:
    scheduler.remove_all_jobs()
    scheduler.shutdown(wait=False)
    await drain()  # AsyncIOScheduler shuts down in a loop callback


THROUGHPUT: dict[str, Callable[[int], Awaitable[float]]] = {
    "limit": throughput_limit,
    "asched": throughput_asched,
    "asched_batch": throughput_asched_batch,
    "apscheduler": throughput_apscheduler,
}


# -- 2. scheduling cost -------------------------------------------------------------


@dataclass(frozen=True)
class PendingCost:
    us_per_task: float
    bytes_per_task: float | None


Pending = list[tuple[datetime, dict[str, Any]]]


def pending_inputs(n: int) -> Pending:
    """Due times 1 h ahead (1 ms apart) and small payloads, built outside the timing."""
    base = datetime.now(UTC) + timedelta(hours=1)
    step = timedelta(milliseconds=1)
    return [(base + i * step, {"channel_id": "c1", "n": i}) for i in range(n)]


async def _measure_pending(
    n: int, traced: bool, fill: Callable[[Pending], Awaitable[None]]
) -> PendingCost:
    """Time ``fill`` (plus any loop callbacks it queued) over n fresh inputs; with
    ``traced``, also the bytes still allocated per task once our inputs are dropped.
    tracemalloc slows everything down, so the two are never measured together."""
    if traced:
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]
    inputs = pending_inputs(n)
    with Stopwatch() as watch:
        await fill(inputs)
        await drain()
    del inputs
    size = None
    if traced:
        gc.collect()
        size = (tracemalloc.get_traced_memory()[0] - baseline) / n
        tracemalloc.stop()
    return PendingCost(watch.elapsed / n * 1e6, size)


async def pending_asched(n: int, traced: bool) -> PendingCost:
    async with new_asched("post", pending_handler()) as scheduler:

        async def fill(inputs: Pending) -> None:
            for when, payload in inputs:
                await scheduler.schedule_task("post", payload, execution_time=when)

        cost = await _measure_pending(n, traced, fill)
        pending = (await scheduler.get_system_load_metrics())["scheduled"]
        if pending != n:
            raise RuntimeError(f"asched: {pending} of {n} tasks pending")
        return cost


async def pending_apscheduler(n: int, traced: bool) -> PendingCost:
    post = pending_handler()
    scheduler = new_apscheduler()
    scheduler.start()
    try:

        async def fill(inputs: Pending) -> None:
            for when, payload in inputs:
                scheduler.add_job(post, "date", run_date=when, kwargs=payload)

        cost = await _measure_pending(n, traced, fill)
        pending = len(scheduler.get_jobs())
        if pending != n:
            raise RuntimeError(f"APScheduler: {pending} of {n} jobs pending")
        return cost
    finally:
        await _stop_apscheduler(scheduler)


PENDING: dict[str, Callable[[int, bool], Awaitable[PendingCost]]] = {
    "asched": pending_asched,
    "apscheduler": pending_apscheduler,
}


# -- 3. lateness ---------------------------------------------------------------------


def lateness_offsets(p: Params) -> list[float]:
    """Seeded offsets in whole microseconds, in random (not due) order."""
    rng = random.Random(SEED)
    span_us = int(p.lateness_spread_s * 1e6)
    return [rng.randrange(span_us) / 1e6 for _ in range(p.lateness_n)]


def due_times(offsets: list[float], lead_s: float) -> list[tuple[datetime, float]]:
    """Aware due datetimes, each with the epoch float it stands for exactly."""
    base = math.floor((time.time() + lead_s) * 1e6) / 1e6
    stamps = [datetime.fromtimestamp(base + offset, UTC) for offset in offsets]
    return [(stamp, stamp.timestamp()) for stamp in stamps]


def check_lead(engine: str, plan: list[tuple[datetime, float]]) -> None:
    """Warn when scheduling overran the lead, so some tasks were late from the start."""
    first_due = min(due for _, due in plan)
    if time.time() > first_due:
        print(
            f"[bench] warning: {engine} finished scheduling after the first due time; "
            "raise lateness_lead_s",
            file=sys.stderr,
        )


async def lateness_asched(offsets: list[float], lead_s: float) -> list[float]:
    countdown, lateness = Countdown(len(offsets)), list[float]()
    async with new_asched("late", lateness_handler(countdown, lateness)) as scheduler:
        plan = due_times(offsets, lead_s)
        for when, due in plan:
            await scheduler.schedule_task("late", {"due": due}, execution_time=when)
        check_lead("asched", plan)
        await countdown.wait("asched lateness")
    return lateness


async def lateness_apscheduler(offsets: list[float], lead_s: float) -> list[float]:
    countdown, lateness = Countdown(len(offsets)), list[float]()
    record = lateness_handler(countdown, lateness)
    scheduler = new_apscheduler()
    scheduler.start()
    try:
        plan = due_times(offsets, lead_s)
        for when, due in plan:
            scheduler.add_job(record, "date", run_date=when, kwargs={"due": due})
        check_lead("APScheduler", plan)
        await countdown.wait("APScheduler lateness")
    finally:
        await _stop_apscheduler(scheduler)
    return lateness


LATENESS: dict[str, Callable[[list[float], float], Awaitable[list[float]]]] = {
    "asched": lateness_asched,
    "apscheduler": lateness_apscheduler,
}


def lateness_summary(lateness_s: list[float]) -> dict[str, float]:
    ordered = sorted(lateness_s)

    def rank(q: float) -> float:  # nearest-rank percentile, in ms
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1e3

    return {
        "p50": rank(0.50),
        "p99": rank(0.99),
        "min": ordered[0] * 1e3,
        "max": ordered[-1] * 1e3,
        "early": sum(1 for x in ordered if x < 0),
    }


# -- rounds --------------------------------------------------------------------------


def one_round(p: Params, offsets: list[float], *, memory: bool = True) -> Figures:
    """Every case once, engines interleaved, each on a fresh loop."""
    throughput = {
        name: p.throughput_n / run_on_uvloop(partial(fn, p.throughput_n))
        for name, fn in THROUGHPUT.items()
    }
    schedule_us: dict[str, float] = {}
    bytes_per_pending: dict[str, float | None] = {}
    for name, fn in PENDING.items():
        schedule_us[name] = run_on_uvloop(partial(fn, p.pending_n, False)).us_per_task
        if memory:
            bytes_per_pending[name] = run_on_uvloop(partial(fn, p.pending_n, True)).bytes_per_task
    lateness = {
        name: lateness_summary(run_on_uvloop(partial(fn, offsets, p.lateness_lead_s)))
        for name, fn in LATENESS.items()
    }
    return {
        "throughput_per_s": throughput,
        "schedule_us": schedule_us,
        "bytes_per_pending": bytes_per_pending,
        "lateness_ms": lateness,
    }


def combine(rounds: list[Figures]) -> Figures:
    """Median of each figure over the rounds; early starts are summed instead, so
    one early start in any round shows."""
    combined: Figures = {}
    for key, value in rounds[0].items():
        values = [r[key] for r in rounds]
        if isinstance(value, dict):
            combined[key] = combine(values)
        elif key == "early":
            combined[key] = sum(values)
        else:
            combined[key] = statistics.median(values)
    return combined


def measure(p: Params, progress: Callable[[str], None]) -> tuple[Figures, list[Figures]]:
    """The combined figures, and each round's own (to judge the noise)."""
    offsets = lateness_offsets(p)
    # Memory is not measured in the warm-up: tracemalloc runs are slow and no
    # warm-up changes what a pending task holds.
    progress("warm-up round (discarded)")
    one_round(p, offsets, memory=False)
    rounds = []
    for index in range(p.repeat):
        progress(f"round {index + 1}/{p.repeat}")
        rounds.append(one_round(p, offsets))
    return combine(rounds), rounds


# -- report --------------------------------------------------------------------------


def ratios(f: Figures) -> dict[str, float]:
    tp, us, size = f["throughput_per_s"], f["schedule_us"], f["bytes_per_pending"]
    return {
        "throughput_asched_vs_limit": tp["asched"] / tp["limit"],
        "throughput_asched_vs_apscheduler": tp["asched"] / tp["apscheduler"],
        "throughput_batch_vs_limit": tp["asched_batch"] / tp["limit"],
        "schedule_us_apscheduler_vs_asched": us["apscheduler"] / us["asched"],
        "bytes_asched_vs_apscheduler": size["asched"] / size["apscheduler"],
        "lateness_p99_asched_vs_apscheduler": (
            f["lateness_ms"]["asched"]["p99"] / f["lateness_ms"]["apscheduler"]["p99"]
        ),
    }


def targets(f: Figures, r: dict[str, float]) -> dict[str, bool]:
    us, size, late = f["schedule_us"], f["bytes_per_pending"], f["lateness_ms"]
    t = TARGETS
    return {
        "throughput >= 0.75x limit": r["throughput_asched_vs_limit"] >= t["throughput_vs_limit"],
        "throughput >= 5x APScheduler": (
            r["throughput_asched_vs_apscheduler"] >= t["throughput_vs_apscheduler"]
        ),
        "schedule <= 6 us/task": us["asched"] <= t["schedule_us"],
        "memory <= 500 B/task": size["asched"] <= t["bytes_per_pending"],
        "memory < APScheduler": size["asched"] < size["apscheduler"],
        "never early": late["asched"]["early"] == 0,
        "p99 lateness <= APScheduler": late["asched"]["p99"] <= late["apscheduler"]["p99"],
    }


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "uvloop": version("uvloop"),
        "apscheduler": version("apscheduler"),
        "asched": version("asched"),
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "platform": platform.platform(),
        "load_avg_1m_start": round(os.getloadavg()[0], 2),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def render(p: Params, f: Figures, env: dict[str, Any]) -> str:
    r, met = ratios(f), targets(f, ratios(f))
    tp, us, size, late = (
        f["throughput_per_s"],
        f["schedule_us"],
        f["bytes_per_pending"],
        f["lateness_ms"],
    )
    lines = [
        f"asched {env['asched']} | Python {env['python']} | uvloop {env['uvloop']} | "
        f"APScheduler {env['apscheduler']} | {env['cpus']} CPUs ({env['cpu']})",
        f"median of {p.repeat} rounds after 1 discarded warm-up; gc on, collected before each; "
        f"load avg {env['load_avg_1m_start']} -> {env.get('load_avg_1m_end', '?')}",
        "",
        f"1. Throughput: {p.throughput_n:,} immediate no-op tasks, schedule all + all finished",
        f"   {'engine':<34}{'tasks/s':>12}",
        f"   {'limit (bare heapq + asyncio.Task)':<34}{tp['limit']:>12,.0f}",
        f"   {'asched schedule_task':<34}{tp['asched']:>12,.0f}",
        f"   {'asched schedule_many':<34}{tp['asched_batch']:>12,.0f}",
        f"   {'APScheduler 3 add_job':<34}{tp['apscheduler']:>12,.0f}",
        f"   asched / limit        {r['throughput_asched_vs_limit']:7.2f}x   "
        f"target >= 0.75x  {_mark(met['throughput >= 0.75x limit'])}",
        f"   asched / APScheduler  {r['throughput_asched_vs_apscheduler']:7.2f}x   "
        f"target >= 5x     {_mark(met['throughput >= 5x APScheduler'])}",
        f"   (schedule_many / limit {r['throughput_batch_vs_limit']:.2f}x)",
        "",
        f"2. Scheduling: {p.pending_n:,} tasks 1 h ahead, all pending at the end",
        f"   {'engine':<20}{'us/task':>10}{'B/pending':>12}   (bytes: tracemalloc)",
        f"   {'asched':<20}{us['asched']:>10.2f}{size['asched']:>12,.0f}",
        f"   {'APScheduler 3':<20}{us['apscheduler']:>10.2f}{size['apscheduler']:>12,.0f}",
        f"   APScheduler / asched time  {r['schedule_us_apscheduler_vs_asched']:6.2f}x",
        f"   asched / APScheduler bytes {r['bytes_asched_vs_apscheduler']:6.2f}x",
        f"   target <= 6 us/task {_mark(met['schedule <= 6 us/task'])}; "
        f"<= 500 B/task {_mark(met['memory <= 500 B/task'])}; "
        f"< APScheduler {_mark(met['memory < APScheduler'])}",
        "",
        f"3. Lateness: {p.lateness_n:,} tasks due over {p.lateness_spread_s:g} s (seed {SEED}), "
        "start - due",
        f"   {'engine':<20}{'p50 ms':>9}{'p99 ms':>9}{'min ms':>9}{'max ms':>9}{'early':>7}",
    ]
    for name, label in (("asched", "asched"), ("apscheduler", "APScheduler 3")):
        s = late[name]
        lines.append(
            f"   {label:<20}{s['p50']:>9.3f}{s['p99']:>9.3f}{s['min']:>9.3f}{s['max']:>9.3f}"
            f"{s['early']:>7d}"
        )
    lines += [
        f"   asched p99 / APScheduler p99 {r['lateness_p99_asched_vs_apscheduler']:.2f}x",
        f"   target never early {_mark(met['never early'])}; "
        f"p99 <= APScheduler {_mark(met['p99 lateness <= APScheduler'])}",
        f"   (early: total over all {p.repeat} rounds)",
    ]
    return "\n".join(lines)


# -- profile -------------------------------------------------------------------------

PROFILED: dict[str, Callable[[Params], Callable[[], Awaitable[Any]]]] = {
    "throughput": lambda p: partial(throughput_asched, p.throughput_n),
    "schedule": lambda p: partial(pending_asched, p.pending_n, False),
}


def profile(case: str, p: Params, top: int) -> str:
    """Run one asched case under pyinstrument; rank functions by self time."""
    from pyinstrument import Profiler

    make = PROFILED[case](p)
    run_on_uvloop(make)  # warm-up
    Stopwatch.profiler = profiler = Profiler(interval=0.0001, async_mode="disabled")
    try:
        run_on_uvloop(make)
    finally:
        Stopwatch.profiler = None
    session = profiler.last_session
    assert session is not None
    own, total = _self_and_total(session.frame_records)
    whole = sum(own.values()) or 1.0
    lines = [
        f"pyinstrument, asched {case} case ({session.sample_count} samples, "
        f"{session.duration:.2f} s, measured region only), top {top} by self time",
        f"   {'self %':>7}{'self s':>8}{'total %':>8}  function (file:line)",
    ]
    ranked = sorted(own.items(), key=lambda kv: kv[1], reverse=True)[:top]
    for ident, seconds in ranked:
        lines.append(
            f"   {seconds / whole:>7.1%}{seconds:>8.3f}{total[ident] / whole:>8.1%}  "
            f"{_describe_frame(ident)}"
        )
    return "\n".join(lines)


def _self_and_total(
    records: Iterable[tuple[list[str], float]],
) -> tuple[dict[str, float], dict[str, float]]:
    """Each sample's time is self time of its innermost frame and total time of
    every distinct frame on its stack."""
    own: dict[str, float] = {}
    total: dict[str, float] = {}
    for stack, seconds in records:
        idents = [frame.split("\x01", 1)[0] for frame in stack]
        if not idents:
            continue
        own[idents[-1]] = own.get(idents[-1], 0.0) + seconds
        for ident in set(idents):
            total[ident] = total.get(ident, 0.0) + seconds
    return own, total


def _describe_frame(ident: str) -> str:
    function, _, rest = ident.partition("\x00")
    path, _, line = rest.partition("\x00")
    for marker in ("/site-packages/", "/work/main/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{function} ({path}:{line})" if path else function


# -- command line ----------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small N: a smoke run")
    parser.add_argument("--repeat", type=int, default=3, metavar="R", help="rounds (median)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--no-audit", action="store_true", help="asched without its audit middleware"
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILED),
        help="instead of the benchmark, profile one asched case with pyinstrument",
    )
    parser.add_argument("--top", type=int, default=25, help="rows in the profile")
    args = parser.parse_args(argv)
    AUDIT["on"] = not args.no_audit
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    p = replace(QUICK if args.quick else Params(), repeat=args.repeat)
    if args.profile:
        print(profile(args.profile, p, args.top))
        return
    env = environment()
    figures, rounds = measure(p, lambda step: print(f"[bench] {step}", file=sys.stderr, flush=True))
    env["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    print(render(p, figures, env))
    if args.json:
        r = ratios(figures)
        document = {
            "params": asdict(p),
            "environment": env,
            "figures": figures,
            "ratios": r,
            "targets": targets(figures, r),
            "rounds": rounds,
        }
        print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
