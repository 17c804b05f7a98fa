"""Declaring (and, for tests and tools, deleting) what a broker prefix uses."""

from __future__ import annotations

from aiormq.abc import AbstractChannel

from asched.broker.names import BrokerNames, tasks_queue_arguments


async def declare_shared(channel: AbstractChannel, names: BrokerNames) -> None:
    """The task queue and the two fanout exchanges every side relies on."""
    await channel.queue_declare(names.tasks, durable=True, arguments=tasks_queue_arguments())
    await channel.exchange_declare(names.control, exchange_type="fanout", durable=True)
    await channel.exchange_declare(names.heartbeats, exchange_type="fanout", durable=True)


async def delete_shared(channel: AbstractChannel, names: BrokerNames) -> None:
    await channel.queue_delete(names.tasks)
    await channel.exchange_delete(names.control)
    await channel.exchange_delete(names.heartbeats)
