"""asched on Redis against arq, SAQ, streaq and taskiq, in one run on one private Redis.

    python -m benchmarks.redis [--n 20000] [--n-one 5000] [--late 500] [--repeat 3]
                               [--concurrency 100] [--aof] [--only asched,arq]
                               [--profile drain]

A redis-server is started on a free loopback port in a temporary directory
(no persistence; ``--aof`` for ``appendonly yes`` + ``appendfsync always``) and
flushed before every measurement.  Every library gets the same no-op handler,
one in-process worker with the same concurrency, and its defaults otherwise.

1. enqueue, one by one: ``--n-one`` awaited calls (asched: ``schedule_task``);
2. enqueue, batched, where a library offers a bulk call (asched:
   ``schedule_many``; streaq: ``enqueue_many``): ``--n`` tasks;
3. drain: ``--n`` tasks already in Redis and due, one worker started; timed from
   the worker's start to the last handler call.  asched runs with
   ``shared_store=True``: every task is claimed under a lease and its writes are
   fenced by the lease token;
3b. drain with worker processes (``--processes 1,2``): the same, with the worker
   run in that many child processes (see ``benchmarks/_redis_workers.py``);
4. lateness: ``--late`` tasks due uniformly over 1..4 s ahead, enqueued while
   the worker runs; the handler records ``time.time() - due`` (p50, p99).

Medians over ``--repeat`` rounds, then each peer's ratio to asched.  Needs the
``bench`` extra and redis-server.  Run it as a module (``-m``): as a script the
file would shadow the redis package.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import uvloop

from asched import Scheduler
from benchmarks._redis_peers import COUNTER, PEERS, Peer, later
from benchmarks._redis_workers import drain_in_processes

Result = dict[str, float | None]


class Asched(Peer):
    name = "asched"
    batch_api = "schedule_many"

    def __init__(self, url: str, concurrency: int) -> None:
        super().__init__(url + "?prefix=bench", concurrency)
        self.url_given = url
        #: When tasks enqueued by ``enqueue`` become due (a producer must be gone by then).
        self.due_at: datetime = later(3600)

    def _scheduler(self, worker: bool) -> Scheduler:
        scheduler = Scheduler(
            store=self.url,
            shared_store=True,
            max_concurrency=self.concurrency,
            strict_task_types=worker,
        )
        if worker:

            async def noop(n: int, due: float | None = None) -> None:
                COUNTER.hit(due)

            scheduler.register("noop", noop)
        return scheduler

    async def enqueue(self, n: int, batch: bool, due: float | None = None) -> None:
        producer = self._scheduler(worker=False)
        when = self.due_at
        async with producer:
            if batch:
                await producer.schedule_many(
                    [
                        {"task_type": "noop", "task_data": {"n": i}, "execution_time": when}
                        for i in range(n)
                    ]
                )
            else:
                for i in range(n):
                    await producer.schedule_task("noop", {"n": i}, execution_time=when)

    async def run_worker(self, until: Callable[[], Awaitable[Any]]) -> None:
        async with self._scheduler(worker=True):
            await until()

    async def lateness(self, dues: list[float]) -> None:
        async with self._scheduler(worker=True) as worker:
            for i, due in enumerate(dues):
                when = datetime.fromtimestamp(due, UTC)
                await worker.schedule_task("noop", {"n": i, "due": due}, execution_time=when)
            await COUNTER.done.wait()


class AschedDefaults(Asched):
    """asched at its own default ``max_concurrency`` (1,000), for reference."""

    name = "asched-1000"

    def __init__(self, url: str, concurrency: int) -> None:
        super().__init__(url, 1000)


# -- the private redis-server --------------------------------------------------------------


class RedisServer:
    def __init__(self, aof: bool) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("redis-server is not installed")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="asched-redis-bench-")
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if aof else []
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", *persistence, "--logfile", os.path.join(self.dir, "redis.log")],
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        import redis

        self.client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def cpu_s(self) -> float:
        """CPU seconds redis-server has used so far."""
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def flush(self) -> None:
        self.client.flushall()

    def stop(self) -> None:
        self.client.close()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


# -- measurements --------------------------------------------------------------------------


async def measure(peer: Peer, server: RedisServer, args: argparse.Namespace) -> Result:
    result: Result = {}
    server.flush()
    start = time.perf_counter()
    await peer.enqueue(args.n_one, batch=False)
    result["enqueue_one"] = args.n_one / (time.perf_counter() - start)
    server.flush()
    result["enqueue_batch"] = None
    if peer.batch_api:
        if isinstance(peer, Asched):
            peer.due_at = later(3600)
        start = time.perf_counter()
        await peer.enqueue(args.n, batch=True)
        elapsed = time.perf_counter() - start
        result["enqueue_batch"] = args.n / elapsed
        server.flush()
    result["drain"], result["redis_cpu"] = await drain(peer, server, args, result["enqueue_batch"])
    server.flush()
    for processes in (1, 2):
        key = f"drain_{processes}p"
        result[key] = None
        if str(processes) in args.processes.split(","):
            await fill(peer, server, args, result["enqueue_batch"])
            result[key] = await asyncio.to_thread(
                drain_in_processes, peer.name, peer.url_given, args.concurrency, args.n, processes
            )
            server.flush()
    result.update(await lateness(peer, args))
    server.flush()
    return result


async def drain(
    peer: Peer, server: RedisServer, args: argparse.Namespace, batch_rate: float | None
) -> tuple[float, float]:
    await fill(peer, server, args, batch_rate)
    done = COUNTER.reset(args.n)
    cpu_s = server.cpu_s()
    start = time.perf_counter()
    profiler = _profiler(args, "drain")
    await peer.run_worker(done.wait)
    elapsed = time.perf_counter() - start
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(color=False, unicode=False), file=sys.stderr)
    return args.n / elapsed, (server.cpu_s() - cpu_s) / elapsed


async def fill(
    peer: Peer, server: RedisServer, args: argparse.Namespace, batch_rate: float | None
) -> None:
    """``--n`` tasks in Redis, due, with no producer left running."""
    if isinstance(peer, Asched):
        # Due once the producer is gone: a shared producer still running would claim them.
        margin_s = 1.0 + 3 * args.n / (batch_rate or 5000.0)
        peer.due_at = later(margin_s)
        await peer.enqueue(args.n, batch=True)
        await asyncio.sleep(max(0.0, peer.due_at.timestamp() - time.time()))
        assert server.client.zcard("{bench}:leased") == 0, "the producer kept leases"
    else:
        await peer.enqueue(args.n, batch=bool(peer.batch_api))


async def lateness(peer: Peer, args: argparse.Namespace) -> Result:
    rng = random.Random(7)
    base = time.time() + 1.0
    dues = sorted(base + rng.uniform(0, 3) for _ in range(args.late))
    COUNTER.reset(args.late)
    try:
        await asyncio.wait_for(peer.lateness(dues), timeout=60)
    except NotImplementedError:
        return {"late_p50_ms": None, "late_p99_ms": None}
    late = sorted(COUNTER.late_s)
    return {
        "late_p50_ms": 1000 * late[len(late) // 2],
        "late_p99_ms": 1000 * late[min(len(late) - 1, int(len(late) * 0.99))],
    }


def _profiler(args: argparse.Namespace, what: str) -> Any:
    if args.profile != what:
        return None
    from pyinstrument import Profiler

    profiler = Profiler()
    profiler.start()
    return profiler


def run_round(
    peers: list[type[Peer]], server: RedisServer, args: argparse.Namespace
) -> dict[str, Result]:
    results = {}
    for kind in peers:
        peer = kind(server.url, args.concurrency)

        async def one(peer: Peer = peer) -> Result:
            try:
                return await measure(peer, server, args)
            finally:
                await peer.close()

        print(f"  {kind.name} ...", file=sys.stderr, flush=True)
        try:
            results[kind.name] = uvloop.run(one())
        except Exception as exc:  # a peer that breaks is reported, not fatal
            print(f"  {kind.name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return results


# -- report --------------------------------------------------------------------------------

COLUMNS = [
    ("enqueue_one", "enqueue 1-by-1 /s"),
    ("enqueue_batch", "enqueue batch /s"),
    ("drain", "drain /s"),
    ("redis_cpu", "redis CPU in drain"),
    ("drain_1p", "drain 1 proc /s"),
    ("drain_2p", "drain 2 procs /s"),
    ("late_p50_ms", "late p50 ms"),
    ("late_p99_ms", "late p99 ms"),
]


def median(rounds: list[dict[str, Result]], name: str, key: str) -> float | None:
    values = [r[name][key] for r in rounds if name in r and r[name][key] is not None]
    return statistics.median(values) if values else None  # type: ignore[type-var]


def report(rounds: list[dict[str, Result]], names: list[str], args: argparse.Namespace) -> None:
    print(
        f"\nRedis queues: n={args.n} drain, n-one={args.n_one}, late={args.late}, "
        f"concurrency={args.concurrency}, {'AOF always' if args.aof else 'no persistence'}, "
        f"{len(rounds)} round(s), load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'library':12}" + "".join(f"{title:>20}" for _, title in COLUMNS))
    for name in names:
        cells = [median(rounds, name, key) for key, _ in COLUMNS]
        print(f"{name:12}" + "".join(f"{_cell(v):>20}" for v in cells))
    compared = [(k, t) for k, t in COLUMNS if k != "redis_cpu" and not k.startswith("late")]
    mine = {key: median(rounds, "asched", key) for key, _ in compared}

    print("\nasched / peer (throughput: higher is better for asched)")
    for name in names:
        if name.startswith("asched"):
            continue
        ratios = []
        for key, title in compared:
            theirs = median(rounds, name, key)
            if key == "enqueue_batch" and theirs is None:
                theirs = median(rounds, name, "enqueue_one")  # no bulk call: its 1-by-1 rate
            ours = mine[key]
            ratio = None if not ours or not theirs else ours / theirs
            ratios.append(f"{title.split(' /')[0]} {_cell(ratio, 'x')}")
        print(f"  vs {name:8} " + ", ".join(ratios))
    best = max(
        (median(rounds, n, "drain") or 0.0 for n in names if not n.startswith("asched")),
        default=0.0,
    )
    if best and mine["drain"]:
        print(f"\ndrain: asched {mine['drain']:.0f}/s = {mine['drain'] / best:.1f}x the best peer")
    for name in names:
        one, two = median(rounds, name, "drain_1p"), median(rounds, name, "drain_2p")
        if one and two:
            print(f"two worker processes / one: {name} {two / one:.2f}x")


def _cell(value: float | None, suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}{suffix}" if value < 100 else f"{value:,.0f}{suffix}"


def peer_kinds() -> dict[str, type[Peer]]:
    kinds: list[type[Peer]] = [Asched, AschedDefaults, *PEERS]
    return {k.name: k for k in kinds}


def main() -> None:
    if not __package__:
        sys.exit("run it as a module: python -m benchmarks.redis")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--n-one", type=int, default=5_000)
    parser.add_argument("--late", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--aof", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--profile", choices=["drain"], default=None)
    parser.add_argument(
        "--processes", default="1,2", help="worker-process drains to run: 1, 2, both or none ('')"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    wanted = set(filter(None, args.only.split(",")))
    peers = [k for name, k in peer_kinds().items() if not wanted or name in wanted]
    server = RedisServer(args.aof)
    try:
        rounds = []
        for i in range(args.repeat):
            print(f"round {i + 1}/{args.repeat}", file=sys.stderr)
            rounds.append(run_round(peers, server, args))
    finally:
        server.stop()
    report(rounds, [k.name for k in peers], args)


if __name__ == "__main__":
    main()
