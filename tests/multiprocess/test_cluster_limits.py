"""Limits and breakers hold for the whole cluster: real default workers on one
SQLite file (and on one Redis).

A per-key ledger of start and end times shows that "one upload per channel at a
time" means one across every worker; a circuit breaker opened by failures in
one worker holds the tasks of the workers that start after it.
"""

from __future__ import annotations

import json
import sqlite3
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from test_default_workers import assert_intact, spawn, states, wait_until

UPLOADER = textwrap.dedent(
    """
    import asyncio, os, sys, time
    from asched import Scheduler

    url, ledger, stop_file = sys.argv[1], sys.argv[2], sys.argv[3]
    scheduler = Scheduler(url, shared_store=True, lease_s=2.0, max_concurrency=10,
                          poll_interval_s=0.05, grace_period_s=5)
    scheduler.limit_key("wide", 2)

    @scheduler.task("upload", max_retries=0)
    async def upload(channel: str, n: int) -> int:
        started = time.time()
        await asyncio.sleep(0.02)
        with open(ledger, "a") as out:
            out.write(f"{channel} {n} {started!r} {time.time()!r} {os.getpid()}\\n")
        return n

    async def main() -> None:
        async with scheduler:
            while not os.path.exists(stop_file):
                await asyncio.sleep(0.05)

    asyncio.run(main())
    """
)

PRODUCER = textwrap.dedent(
    """
    import asyncio, sys
    from asched import Scheduler

    url, task_type, channels = sys.argv[1], sys.argv[2], sys.argv[5]
    first, count = int(sys.argv[3]), int(sys.argv[4])
    producer = Scheduler(url, strict_task_types=False, shared_store=True)
    names = channels.split(",")

    async def main() -> None:
        async with producer:
            for n in range(first, first + count):
                channel = names[n % len(names)]
                await producer.schedule_task(
                    task_type, {"channel": channel, "n": n}, concurrency_key=channel,
                    task_id=f"{task_type}-{n}")

    asyncio.run(main())
    """
)


def ledger_rows(ledger: Path) -> list[tuple[str, int, float, float, str]]:
    rows = []
    for line in ledger.read_text().splitlines():
        channel, n, start, end, pid = line.split()
        rows.append((channel, int(n), float(start), float(end), pid))
    return rows


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of spans open at one moment (an end before a start when tied)."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


@pytest.mark.parametrize(("backend", "workers"), [("sqlite", 2), ("sqlite", 3), ("redis", 2)])
def test_one_upload_per_channel_at_a_time_across_workers(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str, workers: int
) -> None:
    db, ledger, stop = tmp_path / "shared.db", tmp_path / "ledger.txt", tmp_path / "stop"
    url = f"sqlite:///{db}" if backend == "sqlite" else request.getfixturevalue("redis_url")
    (worker := tmp_path / "uploader.py").write_text(UPLOADER)
    (producer := tmp_path / "producer.py").write_text(PRODUCER)
    ledger.touch()
    count = 90
    assert spawn(producer, url, "upload", 0, 3, "c1,c2,wide").wait(timeout=60) == 0
    procs = [spawn(worker, url, ledger, stop) for _ in range(workers)]
    try:
        late = spawn(producer, url, "upload", 3, count - 3, "c1,c2,wide")
        assert late.wait(timeout=60) == 0
        wait_until(lambda: len(ledger.read_text().splitlines()) >= count, 60)
    finally:
        stop.touch()
        codes = [p.wait(timeout=30) for p in procs]
    assert codes == [0] * workers
    rows = ledger_rows(ledger)
    assert sorted(n for _, n, *_ in rows) == list(range(count)), "each upload ran once"
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for channel, _, start, end, _ in rows:
        spans[channel].append((start, end))
    assert most_at_once(spans["c1"]) == 1
    assert most_at_once(spans["c2"]) == 1
    assert most_at_once(spans["wide"]) <= 2  # limit_key("wide", 2) in every worker
    by_channel_pids = {c: {pid for ch, *_, pid in rows if ch == c} for c in ("c1", "c2")}
    assert any(len(pids) > 1 for pids in by_channel_pids.values()), "one channel, many workers"
    if backend == "sqlite":
        assert_intact(db)


CALLER = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from asched import Scheduler

    db, ledger, stop_file, status, flaky = sys.argv[1:6]
    scheduler = Scheduler(f"sqlite:///{db}", lease_s=2.0, grace_period_s=5)
    scheduler.configure_breaker("api", failure_threshold=3, recovery_s=300)
    heard = []
    scheduler.subscribe(lambda event: heard.append(type(event).__name__), states=())

    @scheduler.task("call", breaker="api", max_retries=0)
    async def call(channel: str, n: int) -> int:
        if flaky == "1":
            raise ConnectionError("503 from the api")
        with open(ledger, "a") as out:
            out.write(f"{n} {os.getpid()}\\n")
        return n

    async def report() -> None:
        seen = {}
        for n in range(20):
            try:
                task = await scheduler.get_task(f"call-{n}")
            except LookupError:
                continue
            seen[task.id] = [task.lifecycle.name, task.wait_reason, task.retries]
        view = {"tasks": seen, "heard": heard, "breakers": scheduler.breaker_states()}
        with open(status + ".tmp", "w") as out:
            json.dump(view, out)
        os.replace(status + ".tmp", status)

    async def main() -> None:
        async with scheduler:
            while not os.path.exists(stop_file):
                await report()
                await asyncio.sleep(0.1)

    asyncio.run(main())
    """
)


def breaker_state(db: Path) -> str | None:
    if not db.exists():
        return None
    conn = sqlite3.connect(db, timeout=10)
    try:
        row = conn.execute("SELECT record FROM breakers WHERE name = 'api'").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return None if row is None else str(json.loads(row[0])["state"])


def read_status(path: Path) -> dict[str, Any]:
    try:
        found: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found


def tasks_of(view: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    return list(view.get("tasks", {}).items())


def test_a_breaker_opened_in_one_worker_holds_the_other_workers_tasks(tmp_path: Path) -> None:
    db, ledger = tmp_path / "shared.db", tmp_path / "ledger.txt"
    (worker := tmp_path / "caller.py").write_text(CALLER)
    (producer := tmp_path / "producer.py").write_text(PRODUCER)
    ledger.touch()
    stops = [tmp_path / f"stop-{i}" for i in range(3)]
    status = [tmp_path / f"status-{i}.json" for i in range(3)]
    failing = spawn(worker, db, ledger, stops[0], status[0], 1)
    try:
        assert spawn(producer, f"sqlite:///{db}", "call", 0, 3, "c1").wait(timeout=60) == 0
        wait_until(lambda: breaker_state(db) == "open", 30)
    finally:
        stops[0].touch()
        assert failing.wait(timeout=30) == 0
    assert states(db)["COMPLETED"] == 0

    healthy = [spawn(worker, db, ledger, stops[i], status[i], 0) for i in (1, 2)]
    try:
        # Tasks 3..9, scheduled after the breaker opened, reach the healthy workers.
        assert spawn(producer, f"sqlite:///{db}", "call", 3, 7, "c1,c2").wait(timeout=60) == 0

        def all_held() -> bool:
            views = [read_status(path) for path in status[1:]]
            if any(view.get("breakers") != {"api": "open"} for view in views):
                return False
            held = {
                task_id
                for view in views
                for task_id, (state, reason, retries) in tasks_of(view)
                if state == "SCHEDULED"
                and "circuit 'api' is open" in (reason or "")
                and not retries
            }
            return held >= {f"call-{n}" for n in range(3, 10)}

        wait_until(all_held, 30)
        views = [read_status(path) for path in status[1:]]
    finally:
        for stop in stops[1:]:
            stop.touch()
        codes = [p.wait(timeout=30) for p in healthy]
    assert codes == [0, 0]
    assert ledger.read_text() == "", "no call ran while the breaker was open"
    for view in views:  # each worker learnt of it from the store, and told its subscribers
        assert view["breakers"] == {"api": "open"}
        assert "CircuitOpened" in view["heard"]
    assert_intact(db)
