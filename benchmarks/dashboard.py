"""Dashboard speed on a large SQLite store (targets: page < 1 s, /api/metrics < 50 ms).

Builds a store of N tasks (default 100,000: mostly finished, the rest pending
over the next 24 h, paused or retrying) plus 20 recurring schedules, serves the
dashboard on 127.0.0.1 with uvicorn, and measures over HTTP:

* ``/api/metrics`` latency (median and p95 of --repeat calls);
* the page load: the HTML, its two assets and the five API calls the page makes
  when it opens, one after another (a browser makes the API calls in parallel,
  so this is an upper bound), with the dashboard's short reuse of counts and
  forecasts turned off (the worst case);
* with --browser, the time until Chromium shows the task table and the
  forecast chart (needs the chromium package and Playwright);
* the counts behind the page through the SQLite reader (index-only queries)
  against the generic reader on the same store (the Store contract alone, which
  must read every task): the peer, and the ratio.

    python -m benchmarks.dashboard [--tasks 100000] [--repeat 50] [--browser]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from asched import Scheduler, TaskPriority
from asched.dashboard import create_app
from asched.dashboard.queries import GenericReader, TaskQuery
from asched.dashboard.sqlite_reader import SQLiteReader
from asched.model import Task, TaskLifecycle, TaskMetadata
from asched.stores.sqlite import SQLiteStore

L = TaskLifecycle
TYPES = ["render_video", "upload", "thumbnail", "analytics", "transcode", "publish", "notify"]
#: (share of the store, state)
MIX = [
    (0.75, L.COMPLETED),
    (0.03, L.FAILED),
    (0.02, L.CANCELLED),
    (0.15, L.QUEUED),
    (0.03, "due"),
    (0.01, L.PAUSED),
    (0.01, L.RETRYING),
]
PAGE_CALLS = [
    "api/overview",
    "api/schedules",
    "api/forecast?hours=24&bucket=hour",
    "api/metrics/history",
    "api/tasks?offset=0&limit=50",
]
PAGE_PATHS = ["", "static/dashboard.js", "static/dashboard.css", *PAGE_CALLS]


def make_task(i: int, kind: Any, now: float, rng: random.Random) -> Task:
    meta = TaskMetadata(tags=[f"batch-{i % 10}"])
    due = now + rng.uniform(60, 86_400) if kind is L.QUEUED else now - rng.uniform(0, 7200)
    task = Task(
        f"bench-{i}",
        rng.choice(TYPES),
        b'{"channel_id":"c1","theme":"tech"}',
        TaskPriority(rng.randrange(5)),
        created_s=due - 60,
        due_s=due,
        concurrency_key=f"channel-{i % 20}",
        metadata=meta,
    )
    task.transition(L.QUEUED, due - 60)
    if kind in (L.COMPLETED, L.FAILED, L.RETRYING):
        task.transition(L.SCHEDULED, due)
        task.transition(L.RUNNING, due)
        task.started_s = due
    if kind is L.COMPLETED:
        task.transition(L.COMPLETED, due + 2)
        task.result = {"url": f"https://cdn.example/{i}.mp4"}
    elif kind is L.FAILED:
        task.transition(L.FAILED, due + 2, "RuntimeError: upstream refused")
        task.error = "RuntimeError: upstream refused"
    elif kind is L.RETRYING:
        task.transition(L.RETRYING, due + 2, "attempt 1 failed")
        task.due_s = now + rng.uniform(10, 600)
    elif kind is L.PAUSED:
        task.user_paused = True
        task.transition(L.PAUSED, due - 30, "paused by request")
    elif kind is L.CANCELLED:
        task.transition(L.CANCELLED, due - 30, "cancelled by request")
    if task.is_terminal:
        task.finished_s = due + 2
    return task


async def build_store(path: Path, n: int) -> float:
    """Schedules through a Scheduler (on the empty store), then N tasks inserted directly."""
    t0 = time.perf_counter()
    s = Scheduler(store=f"sqlite:///{path}")
    s.register("analytics", lambda: None, executor="local")
    async with s:
        for i in range(20):
            await s.schedule_recurring("analytics", cron=f"{i * 3} * * * *", schedule_id=f"s{i}")
    store = SQLiteStore(path)
    await store.open()
    rng, now = random.Random(7), time.time()
    kinds = [kind for share, kind in MIX for _ in range(round(share * 1000))]
    for start in range(0, n, 5000):
        batch = [
            make_task(i, kinds[i % len(kinds)], now, rng)
            for i in range(start, min(n, start + 5000))
        ]
        await store.insert([t for t in batch if t is not None])
    await store.close()
    return time.perf_counter() - t0


class Served:
    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        )
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}/"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def page_load(client: httpx.Client) -> None:
    for path in PAGE_PATHS:
        client.get(path).raise_for_status()


def browser_load(url: str, repeat: int) -> list[float] | None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not os.path.exists("/usr/bin/chromium"):
        return None
    out = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for _ in range(repeat):
            page = browser.new_page()
            t0 = time.perf_counter()
            page.goto(url)
            page.locator("#tasks tbody tr").first.wait_for()
            page.locator("#forecast-chart rect.fbar").first.wait_for()
            page.locator("#by-type .row").first.wait_for()
            out.append(time.perf_counter() - t0)
            page.close()
        browser.close()
    return out


async def readers(path: Path, repeat: int) -> dict[str, float]:
    store = SQLiteStore(path)
    await store.open()
    fast, slow = SQLiteReader(store, str(path)), GenericReader(store)
    now = time.time()
    result = {}
    try:
        for name, reader in (("sqlite", fast), ("generic", slow)):
            runs = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                await reader.counts(now)
                await reader.page(TaskQuery(L.QUEUED, limit=50))
                runs.append(time.perf_counter() - t0)
            result[name] = statistics.median(runs)
    finally:
        await fast.close()
        await store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--browser", action="store_true", help="also time Chromium (Playwright)")
    parser.add_argument("--db", type=Path, help="keep the store here (reused if it exists)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.db"
        setup = 0.0 if path.exists() else asyncio.run(build_store(path, args.tasks))
        size_mb = path.stat().st_size / 1e6
        print(
            f"store: {args.tasks:,} tasks + 20 schedules, {size_mb:.0f} MB, built in {setup:.1f} s",
            file=sys.stderr,
        )
        app = create_app(f"sqlite:///{path}")
        # Worst case: no reuse of counts or forecasts between requests.
        app.state.dashboard.source.counts_ttl_s = 0.0
        app.state.dashboard.source.forecast_ttl_s = 0.0
        with Served(app) as url, httpx.Client(base_url=url) as client:
            cold = {
                path: timed(lambda p=path: client.get(p).raise_for_status(), 1)[0]
                for path in PAGE_PATHS
            }
            metrics = timed(lambda: client.get("api/metrics").raise_for_status(), args.repeat)
            pages = timed(lambda: page_load(client), max(5, args.repeat // 5))
            browser = browser_load(url, 5) if args.browser else None
        peer = asyncio.run(readers(path, 3))
    report(args.tasks, metrics, cold, pages, browser, peer)


def line(label: str, runs: list[float], target_s: float) -> str:
    med, worst = statistics.median(runs), p95(runs)
    verdict = "met" if worst < target_s else "NOT met"
    return (
        f"  {label:<34} median {med * 1000:7.1f} ms  p95 {worst * 1000:7.1f} ms  "
        f"target < {target_s * 1000:.0f} ms: {verdict} (median {target_s / med:.1f}x under)"
    )


def report(
    n: int,
    metrics: list[float],
    cold: dict[str, float],
    pages: list[float],
    browser: list[float] | None,
    peer: dict[str, float],
) -> None:
    print(f"dashboard on a SQLite store of {n:,} tasks (uvicorn on 127.0.0.1)")
    print(line("/api/metrics", metrics, 0.05))
    total = sum(cold.values())
    print(f"  first page load (HTTP, serial)     {total * 1000:7.1f} ms:")
    for path, took in cold.items():
        print(f"      {path or '/':<36} {took * 1000:7.1f} ms")
    print(line("page load (HTTP, serial)", pages, 1.0))
    if browser:
        print(line("page load in Chromium (until drawn)", browser, 1.0))
    ratio = peer["generic"] / peer["sqlite"]
    print(
        f"  counts + first QUEUED page: SQLite reader (indexes) {peer['sqlite'] * 1000:.1f} ms; "
        f"generic reader (Store contract, reads every task) {peer['generic'] * 1000:.0f} ms; "
        f"ratio {ratio:.0f}x"
    )


if __name__ == "__main__":
    main()
