"""The programs benchmarks/amqp.py runs in child processes, one per contender.

Each peer's task records the wall-clock time of its first and last run in a
file, so a drain is timed from the worker's first task to its last."""

from __future__ import annotations

# Celery 5: acks_late, no result backend, one solo worker with a prefetch multiplier of 100.
CELERY_APP = """
import os, time
from celery import Celery

N = int(os.environ["BENCH_N"])
STAMPS = os.environ["BENCH_STAMPS"]
QUEUE = os.environ["BENCH_QUEUE"]
app = Celery("bench", broker=os.environ["BENCH_BROKER"])
app.conf.update(
    task_acks_late=True, task_ignore_result=True, task_default_queue=QUEUE,
    worker_prefetch_multiplier=100, broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False, worker_enable_remote_control=False,
)
_seen = 0

@app.task(name="noop")
def noop(n):
    global _seen
    _seen += 1
    if _seen == 1 or _seen == N:
        with open(STAMPS, "a") as out:
            out.write(f"{time.time()}\\n")

if __name__ == "__main__":
    started = time.perf_counter()
    for n in range(N):
        noop.delay(n)
    print(time.perf_counter() - started)
"""

# taskiq + taskiq-aio-pika: one awaited kiq at a time; the worker prefetches 100.
TASKIQ_APP = """
import asyncio, os, time
from taskiq_aio_pika import AioPikaBroker, Exchange, Queue

N = int(os.environ["BENCH_N"])
STAMPS = os.environ["BENCH_STAMPS"]
QUEUE = os.environ["BENCH_QUEUE"]
broker = AioPikaBroker(
    os.environ["BENCH_BROKER"], qos=100, exchange=Exchange(name=QUEUE + ".exchange"),
    task_queues=[Queue(name=QUEUE)], dead_letter_queue=Queue(name=QUEUE + ".dead"),
    delay_queue=Queue(name=QUEUE + ".delay"),
)
_seen = 0

@broker.task(task_name="noop")
async def noop(n: int) -> None:
    global _seen
    _seen += 1
    if _seen == 1 or _seen == N:
        with open(STAMPS, "a") as out:
            out.write(f"{time.time()}\\n")

async def main():
    await broker.startup()
    started = time.perf_counter()
    for n in range(N):
        await noop.kiq(n)
    print(time.perf_counter() - started)
    await broker.shutdown()

if __name__ == "__main__":
    asyncio.run(main())
"""

# asched: the worker side imports this app; the scheduler side runs it as a script.
ASCHED_APP = """
import asyncio, os, sqlite3, sys, time
from asched import Scheduler, TaskLifecycle

N = int(os.environ["BENCH_N"])
scheduler = Scheduler(
    "sqlite:///" + os.environ["BENCH_DB"], broker=os.environ["BENCH_BROKER"],
    broker_prefix=os.environ["BENCH_QUEUE"], max_concurrency=N,
)

@scheduler.task("noop", executor="distributed", max_retries=0)
async def noop(n: int) -> None:
    pass

async def main(mode):
    async with scheduler:
        remote = scheduler._executors["distributed"]
        await remote.wait_connected(30)
        specs = [{"task_type": "noop", "task_data": {"n": n}} for n in range(N)]
        started = time.perf_counter()
        await scheduler.schedule_many(specs)
        if mode == "publish":
            while remote.published < N:
                await asyncio.sleep(0.001)
            print(time.perf_counter() - started)
            await scheduler.stop(grace_s=0)
            return
        # Polled every millisecond: an event listener would cost every transition.
        while scheduler.state_count(TaskLifecycle.COMPLETED) < N:
            await asyncio.sleep(0.001)
        await scheduler.list_tasks(status="COMPLETED", limit=1)  # writes what is pending
        elapsed = time.perf_counter() - started
    with sqlite3.connect(os.environ["BENCH_DB"]) as db:  # checked outside the timing
        query = "SELECT COUNT(*) FROM tasks WHERE lifecycle = 'COMPLETED'"
        recorded = db.execute(query).fetchone()[0]
    assert recorded == N, recorded
    print(elapsed)

if __name__ == "__main__":
    from asched.facade import new_event_loop
    loop = new_event_loop(use_uvloop=True)
    loop.run_until_complete(main(sys.argv[1]))
"""
