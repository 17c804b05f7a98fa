"""DistributedExecutor: due tasks are published to RabbitMQ and run by ``asched worker``s.

The engine still decides when and in what order (priorities, limits, breakers,
rate limits, dependencies); ``run_task`` publishes the attempt and returns a
future that the reply consumer resolves.  Publishes are pipelined: every attempt
started in one loop iteration is published together, each with a publisher
confirm, and none waits for another's confirm.

Each attempt carries a fresh token, so a late or duplicate report (a redelivered
message, a worker that was presumed dead) is recognised and ignored.  While the
broker is unreachable the attempts wait in the outbox with ``wait_reason``
"broker unavailable" and are published once the link is back; an attempt whose
publish was not confirmed is published again, so nothing is lost (a worker may
then see it twice; the token fences the second report).

The timeout of a task runs from the worker's "started" report (a task may
wait in the queue behind others); the worker enforces it, and this side
declares the attempt lost if no outcome arrives within the timeout plus
``report_grace_s`` of that report.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from itertools import count
from typing import Any

import orjson
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp.commands import Basic

from asched.broker import protocol as p
from asched.broker.codec import DEFAULT_MAX_MESSAGE_BYTES, MessageCodec
from asched.broker.errors import MessageRejectedError, MessageTooLargeError, RemoteTaskError
from asched.broker.link import BrokerLink
from asched.broker.names import BrokerNames, amqp_priority, reply_queue_arguments
from asched.broker.topology import declare_shared
from asched.errors import TaskTimeoutError
from asched.executors.base import Executor
from asched.model import Task

logger = logging.getLogger(__name__)

BROKER_UNAVAILABLE = "broker unavailable"
_PERSISTENT = 2
_NACK_RETRY_S = 0.5
_REPLY_PREFETCH = 256
#: a dispatch round of fewer than this many tasks per priority goes one task to a message
_SPREAD_OVER = 16
_ENVELOPE_BYTES = 512  # room for the signature, the reply queue name and the list


@dataclass(eq=False, slots=True)
class _Attempt:
    token: str
    task: Task
    future: asyncio.Future[Any]
    body: bytes  # the task's entry in a task message, JSON
    priority: int
    published: bool = False  # confirmed by the broker
    worker: str | None = None  # the control queue of the worker that reported holding it
    deadline: asyncio.TimerHandle | None = None


class DistributedExecutor(Executor):
    """Publishes attempts to ``<prefix>.tasks``; outcomes come back on this
    scheduler's own reply queue."""

    name = "distributed"
    wants_coroutines = False
    owns_timeouts = True
    start_reason = "dispatched"

    def __init__(
        self,
        url: str,
        prefix: str = "asched",
        *,
        secret: str | bytes | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        report_grace_s: float = 10.0,
    ) -> None:
        self.names = BrokerNames(prefix)
        self.scheduler_id = os.urandom(6).hex()
        self.reply_queue = self.names.replies(self.scheduler_id)
        self._codec = MessageCodec(secret, max_message_bytes)
        self._max_entry_bytes = max_message_bytes - _ENVELOPE_BYTES
        self._report_grace_s = report_grace_s
        self._link = BrokerLink(
            url, f"asched-scheduler-{self.scheduler_id}", self._on_connected, self._on_lost
        )
        self._tokens = count(1)
        self._attempts: dict[str, _Attempt] = {}
        self._outbox: list[_Attempt] = []
        self._flush_pending = False
        self._chores: set[asyncio.Task[Any]] = set()
        self._started = False
        #: task messages the broker has confirmed since start
        self.published = 0
        #: told when the broker becomes unreachable (False) or reachable again (True),
        #: so that the engine holds due tasks back instead of dispatching them
        self.on_availability: Callable[[bool, str], None] | None = None

    @property
    def connected(self) -> bool:
        return self._link.channel is not None

    @property
    def in_flight(self) -> int:
        """Attempts published (or waiting to be) whose outcome has not come back."""
        return len(self._attempts)

    def held_by(self, task_id: str) -> str | None:
        """The control queue of the worker that reported starting the task's current
        attempt, if one has."""
        for attempt in self._attempts.values():
            if attempt.task.id == task_id:
                return attempt.worker
        return None

    async def start(self) -> None:
        if not self._started:  # one instance may be registered under several names
            self._started = True
            self._loop = asyncio.get_running_loop()
            self._announce(False)  # until the first connection is up
            self._link.start()

    async def shutdown(self) -> None:
        if not self._started:
            return
        # Attempts cancelled just before (cancel_task, the end of the grace period)
        # send their cancels from done-callbacks that run on the next loop turn.
        await asyncio.sleep(0)
        self._started = False
        for attempt in list(self._attempts.values()):
            attempt.future.cancel()
        if self._chores:
            await asyncio.wait(self._chores, timeout=2.0)
        await self._link.close()

    async def wait_connected(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                await self._link.up.wait()
        except TimeoutError:
            return False
        return True

    def run(self, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Awaitable[Any]:
        raise TypeError("the distributed executor runs tasks, not bare functions: use run_task")

    def run_task(
        self, task: Task, fn: Callable[..., Any], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        future: asyncio.Future[Any] = self._loop.create_future()
        token = f"{self.scheduler_id}-{next(self._tokens)}"
        entry = {
            "id": task.id,
            "type": task.type,
            "data": orjson.Fragment(task.data_json),
            "token": token,
            "attempt": task.retries,
            "timeout": task.timeout_s,
        }
        body = orjson.dumps(entry)
        if len(body) > self._max_entry_bytes:
            error = MessageTooLargeError(len(body), self._max_entry_bytes)
            future.set_exception(error)
            return future
        attempt = _Attempt(token, task, future, body, amqp_priority(task.priority))
        self._attempts[token] = attempt
        future.add_done_callback(partial(self._on_done, attempt))
        self._outbox.append(attempt)
        if self._link.channel is None:
            task.wait_reason = BROKER_UNAVAILABLE
        else:
            self._request_flush()
        return future

    # -- publishing -----------------------------------------------------------------

    def _request_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        channel = self._link.channel
        if channel is None or not self._outbox:
            return
        batch = [a for a in self._outbox if not a.future.done()]
        self._outbox = []
        for attempt in batch:
            attempt.task.wait_reason = None
        self._spawn(self._publish(channel, self._pack(batch)))

    def _pack(self, batch: list[_Attempt]) -> list[tuple[list[_Attempt], bytes, int]]:
        """Messages of attempts of one priority, under the size limit."""
        by_priority: dict[int, list[_Attempt]] = {}
        for attempt in batch:
            by_priority.setdefault(attempt.priority, []).append(attempt)
        messages = []
        room = self._max_entry_bytes
        for priority, attempts in by_priority.items():
            # A few tasks travel one to a message, so that idle workers share them;
            # a large burst is packed, up to TASKS_PER_MESSAGE to a message.
            per_message = max(1, min(p.TASKS_PER_MESSAGE, len(attempts) // _SPREAD_OVER))
            chunk: list[_Attempt] = []
            size = 0
            for attempt in attempts:
                if chunk and (len(chunk) == per_message or size + len(attempt.body) > room):
                    messages.append((chunk, self._envelope(chunk), priority))
                    chunk, size = [], 0
                chunk.append(attempt)
                size += len(attempt.body) + 1
            messages.append((chunk, self._envelope(chunk), priority))
        return messages

    def _envelope(self, chunk: list[_Attempt]) -> bytes:
        tasks = [orjson.Fragment(a.body) for a in chunk]
        return self._codec.encode({"k": p.TASKS, "reply": self.reply_queue, "tasks": tasks})

    async def _publish(
        self, channel: AbstractChannel, messages: list[tuple[list[_Attempt], bytes, int]]
    ) -> None:
        queue = self.names.tasks
        confirms = await asyncio.gather(
            *(
                channel.basic_publish(
                    body,
                    routing_key=queue,
                    properties=Basic.Properties(delivery_mode=_PERSISTENT, priority=priority),
                    # The confirm is what counts: no drain wait per message.  (aiormq's
                    # Channel takes ``wait``; its abstract base does not declare it.)
                    wait=False,  # type: ignore[call-arg]
                )
                for _, body, priority in messages
            ),
            return_exceptions=True,
        )
        unconfirmed: list[_Attempt] = []
        for (chunk, _, _), confirm in zip(messages, confirms, strict=True):
            if isinstance(confirm, Basic.Ack):
                self.published += len(chunk)
                for attempt in chunk:
                    attempt.published = True
            else:
                unconfirmed.extend(a for a in chunk if not a.future.done())
        if not unconfirmed:
            return
        logger.warning("%d task(s) not confirmed; publishing again", len(unconfirmed))
        self._outbox.extend(unconfirmed)
        if self._link.channel is None:
            for attempt in unconfirmed:
                attempt.task.wait_reason = BROKER_UNAVAILABLE
        else:  # a nack: the broker could not take them just now
            self._loop.call_later(_NACK_RETRY_S, self._request_flush)

    def _spawn(self, work: Any) -> None:
        chore = self._loop.create_task(work)
        self._chores.add(chore)
        chore.add_done_callback(self._chores.discard)

    # -- the link -------------------------------------------------------------------

    async def _on_connected(self, channel: AbstractChannel) -> None:
        await declare_shared(channel, self.names)
        await channel.queue_declare(
            self.reply_queue, durable=True, arguments=reply_queue_arguments()
        )
        await channel.basic_qos(prefetch_count=_REPLY_PREFETCH)
        await channel.basic_consume(self.reply_queue, partial(self._on_reply, channel))
        if self._outbox:
            self._loop.call_soon(self._request_flush)
        self._loop.call_soon(self._announce, True)  # once the link has its channel

    def _on_lost(self) -> None:
        for attempt in self._outbox:
            attempt.task.wait_reason = BROKER_UNAVAILABLE
        self._announce(False)

    def _announce(self, available: bool) -> None:
        if self.on_availability is not None and (available == self.connected):
            self.on_availability(available, BROKER_UNAVAILABLE)

    # -- outcomes -------------------------------------------------------------------

    async def _on_reply(self, channel: AbstractChannel, message: DeliveredMessage) -> None:
        try:
            report = self._codec.decode(message.body)
            items = report["items"] if report.get("k") == p.REPORTS else None
            if not isinstance(items, list):
                raise MessageRejectedError("not a report")
        except (MessageRejectedError, KeyError) as exc:
            logger.warning("ignoring a bad message on %s: %s", self.reply_queue, exc)
            items = []
        worker = report.get("worker") if items else None
        for item in items:
            try:
                self._apply(item, worker if isinstance(worker, str) else None)
            except (KeyError, TypeError) as exc:
                logger.warning("ignoring a bad report item on %s: %r", self.reply_queue, exc)
        if not channel.is_closed:
            await channel.basic_ack(message.delivery_tag or 0, wait=False)

    def _apply(self, item: dict[str, Any], worker: str | None) -> None:
        token = item["t"]
        state = item["s"]
        attempt = self._attempts.get(token)
        if attempt is None:
            if state == p.STARTED and worker is not None:
                # a late start of an attempt that was cancelled or given up on
                self._send_cancel(item["id"], token, worker)
            return
        future = attempt.future
        if future.done():  # settled earlier in this same report; a duplicate
            return
        if state == p.OK:
            future.set_result(item.get("r"))
        elif state == p.ERR:
            error = item["e"]
            future.set_exception(
                RemoteTaskError(error["type"], error["message"], error.get("traceback", ""))
            )
        elif state == p.STARTED:
            attempt.worker = worker
            timeout_s = attempt.task.timeout_s
            if timeout_s is not None:
                if attempt.deadline is not None:
                    attempt.deadline.cancel()
                attempt.deadline = self._loop.call_later(
                    timeout_s + self._report_grace_s, self._expire, attempt
                )
        elif state == p.CANCELLED:
            future.set_exception(RemoteTaskError("CancelledError", "cancelled on the worker"))

    def _expire(self, attempt: _Attempt) -> None:
        if not attempt.future.done():
            task = attempt.task
            attempt.future.set_exception(TaskTimeoutError(task.id, task.timeout_s or 0.0))

    def _on_done(self, attempt: _Attempt, future: asyncio.Future[Any]) -> None:
        self._attempts.pop(attempt.token, None)
        if attempt.deadline is not None:
            attempt.deadline.cancel()
        if future.cancelled() and self._started and attempt.published:
            # cancel_task, or a shutdown past its grace.  Sent to every worker: the one
            # that reported holding it may have died and handed it on since.
            self._send_cancel(attempt.task.id, attempt.token, None)

    def _send_cancel(self, task_id: str, token: str, worker: str | None) -> None:
        channel = self._link.channel
        if channel is None:
            logger.warning("cannot cancel task %s on its worker: the broker is down", task_id)
            return
        body = self._codec.encode({"k": p.CANCEL, "id": task_id, "token": token})
        exchange, key = ("", worker) if worker is not None else (self.names.control, "")
        self._spawn(_publish_quietly(channel, body, exchange, key))


async def _publish_quietly(channel: AbstractChannel, body: bytes, exchange: str, key: str) -> None:
    try:
        await channel.basic_publish(body, exchange=exchange, routing_key=key)
    except Exception as exc:
        logger.warning("a control message was not delivered: %s", exc)
