"""The broker worker: runs the distributed tasks of an app, needing no store.

``asched worker APP --broker URL`` imports APP only for its handler registry.
Task messages are consumed with manual acks and a bounded prefetch; each
outcome (and, for a task still running after ``started_after_s``, a "started"
report) goes to the dispatching scheduler's reply queue with a publisher
confirm, and the task message is acked only once that report is confirmed.  A
worker that dies mid-task therefore leaves its messages unacked, and RabbitMQ
redelivers them to another worker.

Reports ready in the same loop iteration travel as one message.  Cancels arrive
on the worker's own control queue (cancel the coroutine, or kill the process
executor's child, and report CANCELLED); a cancel for a task not held here is
remembered, and the task's message is dropped when it arrives.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import OrderedDict, deque
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp.commands import Basic

from asched.broker import jobs
from asched.broker import protocol as p
from asched.broker.codec import DEFAULT_MAX_MESSAGE_BYTES, MessageCodec
from asched.broker.errors import MessageRejectedError
from asched.broker.link import BrokerLink
from asched.broker.names import BrokerNames
from asched.broker.reports import split_reports
from asched.broker.topology import declare_shared
from asched.clock import wall_now

if TYPE_CHECKING:
    from asched.scheduler import Scheduler

logger = logging.getLogger(__name__)

_REMEMBERED_CANCELS = 10_000
_REPORT_BYTES_MARGIN = 512
_PERSISTENT = 2
#: report messages awaiting a confirm at once; more reports wait and travel together
_REPORTS_IN_FLIGHT = 2


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    url: str
    prefix: str = "asched"
    concurrency: int = 16
    prefetch: int | None = None  # default: 2 x concurrency
    secret: str | bytes | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    heartbeat_s: float = 5.0
    started_after_s: float = 0.1
    grace_s: float = 30.0

    @property
    def effective_prefetch(self) -> int:
        return self.prefetch if self.prefetch is not None else 2 * self.concurrency


class BrokerWorker:
    def __init__(self, scheduler: Scheduler, options: WorkerOptions) -> None:
        self.options = options
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self.names = BrokerNames(options.prefix)
        self.queue = self.names.worker(self.worker_id)
        self._definitions = scheduler.handlers
        config = scheduler.config
        self._executors = jobs.LocalExecutors(
            config.thread_pool_size, min(options.concurrency, config.process_pool_size)
        )
        self._codec = MessageCodec(options.secret, options.max_message_bytes)
        self._link = BrokerLink(
            options.url, f"asched-worker-{self.worker_id}", self._on_connected, self._on_lost
        )
        self._generation = 0
        self._jobs: dict[str, jobs.Job] = {}  # token -> every job held, running or waiting
        self._waiting: deque[jobs.Job] = deque()
        self._running = 0
        # tokens of attempts cancelled before their message reached this worker
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        # reply queue -> [(encoded report item, the job it settles or None)]
        self._outgoing: dict[str, list[tuple[bytes, jobs.Job | None]]] = {}
        self._flush_pending = False
        self._publishing = 0  # report messages awaiting their confirm
        self._chores: set[asyncio.Task[Any]] = set()
        self._consumer_tag: str | None = None
        self._stopping = False
        self.completed = 0

    # -- running ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, hurry: asyncio.Event | None = None) -> None:
        """Work until ``stop`` is set, then drain within the grace period (which
        ``hurry``, once set, cuts short)."""
        self._loop = asyncio.get_running_loop()
        self._hurry = hurry or asyncio.Event()
        self._link.start()
        beat = self._loop.create_task(self._heartbeat_forever())
        try:
            await stop.wait()
        finally:
            beat.cancel()
            await self._drain()

    async def _drain(self) -> None:
        self._stopping = True
        channel = self._link.channel
        if channel is not None and self._consumer_tag is not None:
            try:
                await channel.basic_cancel(self._consumer_tag)
            except Exception as exc:
                logger.debug("cancelling the consumer: %s", exc)
        await self._finish_held(deadline_s=self._loop.time() + self.options.grace_s)
        await self._send_last_reports(deadline_s=self._loop.time() + 5.0)
        await self._link.close()
        await self._executors.shutdown()

    async def _finish_held(self, deadline_s: float) -> None:
        """Run what this worker holds (waiting tasks start as others finish) until the
        deadline; then cancel the rest, whose messages stay unacked for another worker."""
        while True:
            handles = [j.handle for j in self._jobs.values() if j.handle and not j.handle.done()]
            if not handles:
                return
            remaining_s = deadline_s - self._loop.time()
            if remaining_s <= 0 or self._hurry.is_set():
                self._waiting.clear()
                for handle in handles:
                    handle.cancel()
                await asyncio.wait(handles)
                return
            hurried = self._loop.create_task(self._hurry.wait())
            waits = [*handles, hurried]
            await asyncio.wait(waits, timeout=remaining_s, return_when=asyncio.FIRST_COMPLETED)
            hurried.cancel()

    async def _send_last_reports(self, deadline_s: float) -> None:
        while self._link.channel is not None and (self._outgoing or self._chores):
            self._flush()
            remaining_s = deadline_s - self._loop.time()
            if remaining_s <= 0 or not self._chores:
                return
            await asyncio.wait(set(self._chores), timeout=remaining_s)

    # -- the link -------------------------------------------------------------------

    async def _on_connected(self, channel: AbstractChannel) -> None:
        self._generation += 1
        generation = self._generation
        await declare_shared(channel, self.names)
        await channel.queue_declare(self.queue, exclusive=True, auto_delete=True)
        await channel.queue_bind(self.queue, self.names.control, routing_key="")
        await channel.basic_consume(self.queue, self._on_control, no_ack=True)
        if not self._stopping:
            messages = max(1, self.options.effective_prefetch // p.TASKS_PER_MESSAGE)
            await channel.basic_qos(prefetch_count=messages)
            ok = await channel.basic_consume(
                self.names.tasks, partial(self._on_task, channel, generation)
            )
            self._consumer_tag = ok.consumer_tag
        if self._outgoing:
            self._loop.call_soon(self._request_flush)
        logger.info("worker %s consuming %s", self.worker_id, self.names.tasks)

    def _on_lost(self) -> None:
        # Unacked deliveries went back to the queue; the waiting ones will come again.
        for job in self._waiting:
            self._jobs.pop(job.token, None)
        self._waiting.clear()

    # -- task messages --------------------------------------------------------------

    async def _on_task(
        self, channel: AbstractChannel, generation: int, message: DeliveredMessage
    ) -> None:
        tag = message.delivery_tag or 0
        try:
            found = jobs.read_tasks(self._codec.decode(message.body))
        except (MessageRejectedError, KeyError, TypeError, ValueError) as exc:
            logger.warning("dropping a bad task message: %s", exc)
            if not channel.is_closed:
                await channel.basic_reject(tag, requeue=False, wait=False)
            return
        delivery = jobs.Delivery(generation, tag, len(found))
        for job in found:
            held = self._jobs.get(job.token)
            if held is not None:  # redelivered (a reconnect) while we still hold it
                held.deliveries.append(delivery)
                continue
            job.deliveries.append(delivery)
            if self._stopping:
                continue  # left unacked: the broker hands it to another worker
            self._jobs[job.token] = job
            if job.token in self._cancelled:
                self._settle(job, jobs.cancelled(job))
            elif self._running < self.options.concurrency:
                self._start(job)
            else:
                self._waiting.append(job)

    def _start(self, job: jobs.Job) -> None:
        definition = self._definitions.get(job.task_type)
        kind = None if definition is None else jobs.DISTRIBUTED_EXECUTORS.get(definition.executor)
        if definition is None or kind is None:
            self._settle(job, jobs.no_handler(job))
            return
        self._running += 1
        job.handle = self._loop.create_task(self._execute(job, definition.handler, kind))
        # With a timeout, the scheduler's deadline runs from this report: send it now.
        delay_s = 0.0 if job.timeout_s is not None else self.options.started_after_s
        job.started_timer = self._loop.call_later(delay_s, self._report_started, job)

    async def _execute(self, job: jobs.Job, handler: Any, kind: str) -> None:
        try:
            item = await jobs.execute(job, handler, kind, self._executors)
        except asyncio.CancelledError:
            self._running -= 1
            self._jobs.pop(job.token, None)  # shutdown: left unacked for another worker
            raise
        finally:
            if job.started_timer is not None:
                job.started_timer.cancel()
        self._running -= 1
        self._settle(job, item)
        while self._waiting and self._running < self.options.concurrency:
            self._start(self._waiting.popleft())

    def _report_started(self, job: jobs.Job) -> None:
        self._queue_report(job.reply_to, jobs.started(job), None)

    def _settle(self, job: jobs.Job, item: bytes) -> None:
        self._queue_report(job.reply_to, item, job)

    # -- reports ----------------------------------------------------------------------

    def _queue_report(self, reply_to: str, item: bytes, job: jobs.Job | None) -> None:
        self._outgoing.setdefault(reply_to, []).append((item, job))
        self._request_flush()

    def _request_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        channel = self._link.channel
        if channel is None or not self._outgoing or self._publishing >= _REPORTS_IN_FLIGHT:
            return  # a confirm still due will flush again: reports gather meanwhile
        outgoing, self._outgoing = self._outgoing, {}
        for reply_to, entries in outgoing.items():
            for batch in split_reports(entries, self._codec.max_bytes - _REPORT_BYTES_MARGIN):
                self._publishing += 1
                self._spawn(self._publish_reports(channel, reply_to, batch))

    async def _publish_reports(
        self, channel: AbstractChannel, reply_to: str, batch: list[tuple[bytes, jobs.Job | None]]
    ) -> None:
        body = self._codec.encode(
            {
                "k": p.REPORTS,
                "worker": self.queue,
                "items": [orjson.Fragment(item) for item, _ in batch],
            }
        )
        try:
            confirm = await channel.basic_publish(
                body, routing_key=reply_to, properties=Basic.Properties(delivery_mode=_PERSISTENT)
            )
        except Exception as exc:
            confirm = None
            logger.warning("reports to %s not sent (%s); sending again", reply_to, exc)
        finally:
            self._publishing -= 1
        if not isinstance(confirm, Basic.Ack):
            self._outgoing.setdefault(reply_to, [])[:0] = batch
            if self._link.channel is not None:
                self._loop.call_later(0.5, self._request_flush)
            return
        if self._outgoing:
            self._request_flush()
        settled = [job for _, job in batch if job is not None]
        for job in settled:
            self._jobs.pop(job.token, None)
        self.completed += len(settled)
        current = self._link.channel
        if current is None or current.is_closed:
            return  # the broker requeued them; the reports are out, their tokens fence them
        tags = []
        for job in settled:
            for delivery in job.deliveries:
                delivery.remaining -= 1
                if delivery.remaining == 0 and delivery.generation == self._generation:
                    tags.append(delivery.tag)
        if tags:
            self._spawn(_ack_each(current, tags))

    # -- control and heartbeats ----------------------------------------------------

    async def _on_control(self, message: DeliveredMessage) -> None:
        try:
            control = self._codec.decode(message.body)
        except MessageRejectedError as exc:
            logger.warning("dropping a bad control message: %s", exc)
            return
        if control.get("k") != p.CANCEL:
            return
        token = control.get("token")
        if not isinstance(token, str):
            return
        job = self._jobs.get(token)
        if job is None:  # a later attempt of the same task has a new token: unaffected
            self._remember_cancel(token)
            return
        job.cancel_requested = True
        if job.handle is not None:
            job.handle.cancel()
            logger.info("cancelled task %s on request", job.task_id)
        elif job in self._waiting:
            self._waiting.remove(job)
            self._settle(job, jobs.cancelled(job))

    def _remember_cancel(self, token: str) -> None:
        self._cancelled[token] = None
        if len(self._cancelled) > _REMEMBERED_CANCELS:
            self._cancelled.popitem(last=False)

    async def _heartbeat_forever(self) -> None:
        host, pid = socket.gethostname(), os.getpid()
        while True:
            channel = self._link.channel
            if channel is not None:
                beat = {
                    "k": p.HEARTBEAT,
                    "worker": self.worker_id,
                    "host": host,
                    "pid": pid,
                    "prefetch": self.options.effective_prefetch,
                    "concurrency": self.options.concurrency,
                    "running": self._running,
                    "at": wall_now(),
                }
                self._spawn(_publish_quietly(channel, self._codec.encode(beat), self.names))
            await asyncio.sleep(self.options.heartbeat_s)

    def _spawn(self, work: Any) -> None:
        chore = self._loop.create_task(work)
        self._chores.add(chore)
        chore.add_done_callback(self._chores.discard)


async def _ack_each(channel: AbstractChannel, tags: list[int]) -> None:
    """Ack one by one: a ``multiple`` ack would also cover messages still running."""
    for tag in tags:
        await channel.basic_ack(tag, wait=False)


async def _publish_quietly(channel: AbstractChannel, body: bytes, names: BrokerNames) -> None:
    try:
        await channel.basic_publish(body, exchange=names.heartbeats, routing_key="")
    except Exception as exc:
        logger.debug("heartbeat not sent: %s", exc)


async def run_worker(
    scheduler: Scheduler,
    options: WorkerOptions,
    stop: asyncio.Event,
    hurry: asyncio.Event | None = None,
) -> None:
    """Run a broker worker for ``scheduler``'s handlers until ``stop`` is set; then
    finish the tasks it holds within ``options.grace_s``, or at once once ``hurry``
    is set (what is still running is cancelled and left to another worker)."""
    worker = BrokerWorker(scheduler, options)
    logger.info(
        "asched worker %s on %s (prefix %s): concurrency %d, prefetch %d",
        worker.worker_id,
        worker._link.safe_url,
        options.prefix,
        options.concurrency,
        options.effective_prefetch,
    )
    await worker.run(stop, hurry)
