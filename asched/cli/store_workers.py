"""``asched workers --store URL``: the workers registered in a store, live or lost."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from asched import Scheduler
from asched.stores import Store


async def show_workers(store: Store, as_json: bool = False) -> None:
    scheduler = Scheduler(store)
    await scheduler.connect()
    try:
        workers = await scheduler.list_workers()
    finally:
        await scheduler.disconnect()
    print(format_workers(workers))


def format_workers(workers: list[dict[str, Any]]) -> str:
    if not workers:
        return "no workers registered in this store"
    header = ("ID", "STATUS", "HOST", "PID", "STARTED", "LAST HEARTBEAT", "RUNNING", "VERSION")
    rows = [header] + [
        (
            str(w["id"]),
            str(w["status"]),
            str(w["host"]),
            str(w["pid"]),
            _when(w["started"]),
            _when(w["last_heartbeat"]),
            str(w["running"]),
            str(w["version"]),
        )
        for w in workers
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    live = sum(1 for w in workers if w["status"] == "live")
    lines.append(f"{live} live, {len(workers) - live} lost")
    return "\n".join(line.rstrip() for line in lines)


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")
