"""``asched workers``: which broker workers are alive, from their heartbeats."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiormq
from aiormq.abc import DeliveredMessage

from asched.broker import protocol as p
from asched.broker.codec import MessageCodec
from asched.broker.errors import MessageRejectedError
from asched.broker.names import BrokerNames
from asched.clock import wall_now

COLUMNS = ("worker", "host", "pid", "prefetch", "running", "last heartbeat")


async def listen_for_workers(
    url: str, prefix: str, listen_s: float, secret: str | None = None
) -> list[dict[str, Any]]:
    """The latest heartbeat of every worker heard within ``listen_s`` seconds."""
    names = BrokerNames(prefix)
    codec = MessageCodec(secret)
    heard: dict[str, dict[str, Any]] = {}

    async def on_beat(message: DeliveredMessage) -> None:
        try:
            beat = codec.decode(message.body)
        except MessageRejectedError:
            return
        if beat.get("k") == p.HEARTBEAT and isinstance(beat.get("worker"), str):
            heard[beat["worker"]] = beat

    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        await channel.exchange_declare(names.heartbeats, exchange_type="fanout", durable=True)
        declared = await channel.queue_declare("", exclusive=True, auto_delete=True)
        queue = declared.queue or ""
        await channel.queue_bind(queue, names.heartbeats, routing_key="")
        await channel.basic_consume(queue, on_beat, no_ack=True)
        await asyncio.sleep(listen_s)
    finally:
        await connection.close()
    return sorted(heard.values(), key=lambda beat: str(beat["worker"]))


def format_workers(beats: list[dict[str, Any]], now_s: float | None = None) -> str:
    if not beats:
        return "no broker workers heard"
    now = wall_now() if now_s is None else now_s
    rows = [COLUMNS]
    for beat in beats:
        at = float(beat.get("at", 0.0))
        stamp = datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")
        rows.append(
            (
                str(beat["worker"]),
                str(beat.get("host", "?")),
                str(beat.get("pid", "?")),
                str(beat.get("prefetch", "?")),
                str(beat.get("running", "?")),
                f"{stamp} UTC ({now - at:.0f}s ago)",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )
