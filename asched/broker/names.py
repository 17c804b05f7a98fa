"""Every exchange and queue name, derived from one prefix (``broker_prefix``)."""

from __future__ import annotations

from dataclasses import dataclass

from pamqp.common import Arguments

#: TaskPriority runs lower first (CRITICAL=0 .. BACKGROUND=4); AMQP runs higher first.
MAX_AMQP_PRIORITY = 4
#: an idle scheduler's reply queue is deleted by the broker after this long
REPLY_QUEUE_EXPIRES_MS = 24 * 3600 * 1000


def amqp_priority(task_priority: int) -> int:
    return MAX_AMQP_PRIORITY - min(max(task_priority, 0), MAX_AMQP_PRIORITY)


@dataclass(frozen=True, slots=True)
class BrokerNames:
    prefix: str

    @property
    def tasks(self) -> str:
        """The durable priority queue every worker consumes tasks from."""
        return f"{self.prefix}.tasks"

    @property
    def control(self) -> str:
        """Fanout exchange for cancels of tasks no worker has reported holding."""
        return f"{self.prefix}.control"

    @property
    def heartbeats(self) -> str:
        """Fanout exchange workers announce themselves on."""
        return f"{self.prefix}.heartbeats"

    def replies(self, scheduler_id: str) -> str:
        """One scheduler's durable report queue."""
        return f"{self.prefix}.replies.{scheduler_id}"

    def worker(self, worker_id: str) -> str:
        """One worker's control queue (exclusive, gone with the worker)."""
        return f"{self.prefix}.worker.{worker_id}"

    @property
    def replies_pattern(self) -> str:
        return f"{self.prefix}.replies."


def tasks_queue_arguments() -> Arguments:
    return {"x-max-priority": MAX_AMQP_PRIORITY}


def reply_queue_arguments() -> Arguments:
    return {"x-expires": REPLY_QUEUE_EXPIRES_MS}
