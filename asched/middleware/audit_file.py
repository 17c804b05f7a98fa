"""The audit trail as JSON lines in a file, for compliance tooling.

Lines are buffered and appended by a background task (off the loop, in a
thread) twice a second and at stop, so writing them never blocks scheduling.
The file's folder is created if missing (mode 0700), the file itself 0600.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import orjson

from asched.background import cancel_and_wait
from asched.events import Event, TaskEvent

FLUSH_EVERY_S = 0.5


class AuditFile:
    """A service of the engine: ``record`` entries, ``hear`` task events."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lines: list[bytes] = []
        self._flusher: asyncio.Task[None] | None = None

    def record(self, entry: dict[str, Any]) -> None:
        self._lines.append(orjson.dumps(entry, default=str) + b"\n")

    def hear(self, event: Event) -> None:
        if isinstance(event, TaskEvent):
            self.record(
                {
                    "action": "state",
                    "task_id": event.task_id,
                    "task_type": event.task_type,
                    "at_s": event.at_s,
                    "from": event.from_state.name,
                    "to": event.to_state.name,
                    "reason": event.reason,
                }
            )

    async def start(self) -> None:
        await asyncio.to_thread(self._prepare)
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def stop(self) -> None:
        await cancel_and_wait(self._flusher)
        self._flusher = None
        await self.flush()

    async def flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            await asyncio.to_thread(self._append, b"".join(lines))

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            await self.flush()

    def _prepare(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)

    def _append(self, data: bytes) -> None:
        with open(self.path, "ab") as out:
            out.write(data)
