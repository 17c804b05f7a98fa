"""asched's broker dispatch against Celery 5 and taskiq on the same RabbitMQ, and
against the raw aio-pika limit, in one run.

Every contender moves N no-op tasks through one producer and one worker process:

- raw aio-pika: publish N persistent messages with confirms pipelined in windows
  of 1,000, then consume them with manual acks (prefetch 100): the client limit;
  the same on aiormq (the layer under aio-pika, which asched uses directly);
- Celery 5 (acks_late, no result backend): ``delay()`` N times, then one
  ``-P solo`` worker with a prefetch multiplier of 100 drains the queue;
- taskiq + taskiq-aio-pika: one awaited ``kiq`` at a time, then one worker
  (prefetch 100) drains the queue;
- asched: ``schedule_many`` on a SQLite store with ``executor="distributed"``
  and one ``asched worker --prefetch 200`` already running, timed until the
  store has recorded every completion (schedule-to-recorded-completion); and,
  with no worker, how fast ``schedule_many``'s tasks are published and confirmed.

Peers' drains run from their worker's first task to its last.  Runs are
interleaved; the figures are medians.

    python -m benchmarks.amqp [--n 10000] [--repeat 3] [--broker amqp://...]

Needs RabbitMQ and the ``bench`` extra (Celery, taskiq, taskiq-aio-pika).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aio_pika
import aiormq

from benchmarks._amqp_apps import ASCHED_APP, CELERY_APP, TASKIQ_APP

ROOT = Path(__file__).resolve().parent.parent
Figures = dict[str, float]


async def _raw(url: str, n: int, queue: str) -> Figures:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        declared = await channel.declare_queue(queue, durable=True)
        body = b'{"k":"task","id":"0123456789","type":"noop","data":{"n":1}}'
        started = time.perf_counter()
        for window in range(0, n, 1000):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=queue,
                    )
                    for _ in range(min(1000, n - window))
                )
            )
        published = time.perf_counter() - started
        await channel.set_qos(prefetch_count=100)
        drained = asyncio.get_running_loop().create_future()
        seen = 0

        async def consume(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            await message.ack()
            seen += 1
            if seen == n:
                drained.set_result(time.perf_counter())

        started = time.perf_counter()
        await declared.consume(consume)
        consumed = await drained - started
    finally:
        await connection.close()
    return {"raw publish": n / published, "raw consume": n / consumed}


async def _raw_aiormq(url: str, n: int, queue: str) -> Figures:
    """The same as :func:`_raw` on aiormq, the layer under aio-pika that asched uses."""
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        await channel.queue_declare(queue, durable=True)
        body = b'{"k":"task","id":"0123456789","type":"noop","data":{"n":1}}'
        persistent = aiormq.spec.Basic.Properties(delivery_mode=2)
        started = time.perf_counter()
        for window in range(0, n, 1000):
            await asyncio.gather(
                *(
                    channel.basic_publish(body, routing_key=queue, properties=persistent)
                    for _ in range(min(1000, n - window))
                )
            )
        published = time.perf_counter() - started
        await channel.basic_qos(prefetch_count=100)
        drained = asyncio.get_running_loop().create_future()
        seen = 0

        async def consume(message: aiormq.abc.DeliveredMessage) -> None:
            nonlocal seen
            await channel.basic_ack(message.delivery_tag or 0)
            seen += 1
            if seen == n:
                drained.set_result(time.perf_counter())

        started = time.perf_counter()
        await channel.basic_consume(queue, consume)
        consumed = await drained - started
    finally:
        await connection.close()
    return {"aiormq publish": n / published, "aiormq consume": n / consumed}


def _run(args: list[str], env: dict[str, str], cwd: Path) -> float:
    out = subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{out.stdout}\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def _drain(worker: list[str], env: dict[str, str], cwd: Path, stamps: Path, n: int) -> float:
    """Start a peer's worker on the filled queue; its rate from first task to last."""
    child = subprocess.Popen(
        [sys.executable, *worker],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=open(cwd / "worker.log", "w"),  # noqa: SIM115 - closed with the process
    )
    try:
        deadline = time.monotonic() + 300
        while len(_stamps(stamps)) < 2:
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError((cwd / "worker.log").read_text())
            time.sleep(0.05)
    finally:
        child.terminate()
        child.wait(timeout=30)
    first, last = _stamps(stamps)[:2]
    return n / (last - first)


def _stamps(path: Path) -> list[float]:
    return [float(x) for x in path.read_text().split()] if path.exists() else []


def _peer(name: str, source: str, worker: list[str], url: str, n: int, tmp: Path) -> Figures:
    queue = f"bench-{name}-{uuid.uuid4().hex[:8]}"
    (tmp / f"{name}_app.py").write_text(source)
    env = _env(url, n, queue, tmp)
    try:
        enqueue = _run([f"{name}_app.py"], env, tmp)
        drain = _drain(worker, env, tmp, tmp / "stamps", n)
    finally:
        (tmp / "stamps").unlink(missing_ok=True)
        asyncio.run(
            _delete(url, [queue, queue + ".dead", queue + ".delay"], [queue, queue + ".exchange"])
        )
    return {f"{name} enqueue": n / enqueue, f"{name} drain": drain}


def _asched(url: str, n: int, tmp: Path) -> Figures:
    (tmp / "asched_app.py").write_text(ASCHED_APP)
    figures: Figures = {}
    for mode in ("publish", "end-to-end"):
        prefix = f"bench-asched-{uuid.uuid4().hex[:8]}"
        env = _env(url, n, prefix, tmp)
        env["BENCH_DB"] = str(tmp / f"{prefix}.db")
        worker = None
        try:
            if mode == "end-to-end":
                worker = _start_asched_worker(env, tmp)
            figures[f"asched {mode}"] = n / _run(["asched_app.py", mode], env, tmp)
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=60)
            asyncio.run(
                _delete(url, _queues(prefix), [f"{prefix}.control", f"{prefix}.heartbeats"])
            )
    return figures


def _start_asched_worker(env: dict[str, str], tmp: Path) -> subprocess.Popen[bytes]:
    log = tmp / "asched-worker.log"
    command = [
        "-m",
        "asched.cli",
        "worker",
        "asched_app:scheduler",
        "--prefetch",
        "200",
        "--concurrency",
        "100",
    ]
    with open(log, "wb") as out:
        worker = subprocess.Popen([sys.executable, *command], env=env, cwd=tmp, stderr=out)
    deadline = time.monotonic() + 60
    while "consuming" not in log.read_text():
        if time.monotonic() > deadline or worker.poll() is not None:
            raise RuntimeError(log.read_text())
        time.sleep(0.05)
    return worker


def _queues(prefix: str) -> list[str]:
    listed = subprocess.run(
        ["rabbitmqctl", "list_queues", "name", "-q", "--no-table-headers"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return [name for name in listed if name.startswith(prefix + ".")]


async def _delete(url: str, queues: list[str], exchanges: list[str]) -> None:
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)
    finally:
        await connection.close()


def _env(url: str, n: int, queue: str, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp), str(ROOT), env.get("PYTHONPATH")]))
    env.update(
        BENCH_BROKER=url, BENCH_N=str(n), BENCH_QUEUE=queue, BENCH_STAMPS=str(tmp / "stamps")
    )
    return env


def _round(url: str, n: int, tmp: Path) -> Figures:
    figures: Figures = {}
    raw_queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
    try:
        figures.update(asyncio.run(_raw(url, n, raw_queue)))
        figures.update(asyncio.run(_raw_aiormq(url, n, raw_queue + "-aiormq")))
    finally:
        asyncio.run(_delete(url, [raw_queue, raw_queue + "-aiormq"], []))
    celery_worker = [
        "-m",
        "celery",
        "-A",
        "celery_app",
        "worker",
        "-P",
        "solo",
        "-c",
        "1",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "WARNING",
    ]
    figures.update(_peer("celery", CELERY_APP, celery_worker, url, n, tmp))
    taskiq_worker = ["-m", "taskiq", "worker", "taskiq_app:broker", "--workers", "1"]
    figures.update(_peer("taskiq", TASKIQ_APP, taskiq_worker, url, n, tmp))
    figures.update(_asched(url, n, tmp))
    return figures


def _report(rounds: list[Figures]) -> None:
    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    keys = list(rounds[0])
    print(f"{'measure':<22}{'median/s':>10}   rounds")
    for key in keys:
        each = " ".join(f"{r[key]:7.0f}" for r in rounds)
        print(f"{key:<22}{median(key):>10.0f}   {each}")
    e2e = median("asched end-to-end")
    best_peer = max(median("celery drain"), median("taskiq drain"))
    ratios = [
        ("asched end-to-end / raw consume", e2e / median("raw consume"), 0.7),
        ("asched end-to-end / best peer drain", e2e / best_peer, 1.5),
        ("asched publish / raw publish", median("asched publish") / median("raw publish"), 0.8),
    ]
    print()
    for name, ratio, target in ratios:
        verdict = "met" if ratio >= target else "NOT met"
        print(f"{name:<40}{ratio:6.2f}x   target {target}x: {verdict}")
    resolved = e2e / best_peer >= 1.2
    print(f"{'resolution bar (>= 1.2x best peer)':<40}{'met' if resolved else 'NOT met':>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="asched-amqp-bench-") as tmp:
        for index in range(args.repeat):
            print(f"round {index + 1}/{args.repeat} ...", file=sys.stderr, flush=True)
            rounds.append(_round(args.broker, args.n, Path(tmp)))
    _report(rounds)


if __name__ == "__main__":
    main()
