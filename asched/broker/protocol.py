"""What travels over the broker, spelled out once for both sides.

- tasks (scheduler → ``<prefix>.tasks``): ``{"k": "tasks", "reply", "tasks": [{"id",
  "type", "data", "token", "attempt", "timeout"}]}``; ``token`` names one attempt.  A
  message carries tasks of one priority dispatched in the same loop iteration: one
  when they are few (so idle workers share them), up to :data:`TASKS_PER_MESSAGE`
  in a large burst.  It is acked once every one of them is reported.
- reports (worker → the scheduler's reply queue): ``{"k": "reports", "worker", "items":
  [{"t": token, "id", "s": state, "r": result | "e": error}]}`` where the state is
  ``started``, ``ok``, ``err`` or ``cancelled``; one message carries every report a
  worker had ready in one loop iteration.
- cancel (scheduler → one worker's queue, or to all through ``<prefix>.control``):
  ``{"k": "cancel", "id", "token"}``.
- heartbeat (worker → ``<prefix>.heartbeats``): ``{"k": "hb", "worker", "host",
  "pid", "prefetch", "concurrency", "running", "at"}``.
"""

from __future__ import annotations

from typing import Any, Final

TASKS: Final = "tasks"
#: how many tasks one message carries at most (a worker's prefetch counts tasks, so
#: it takes ``prefetch // TASKS_PER_MESSAGE`` messages, at least one)
TASKS_PER_MESSAGE: Final = 10
REPORTS: Final = "reports"
CANCEL: Final = "cancel"
HEARTBEAT: Final = "hb"

STARTED: Final = "started"
OK: Final = "ok"
ERR: Final = "err"
CANCELLED: Final = "cancelled"


def error_item(
    token: str, task_id: str, error_type: str, message: str, trace: str = ""
) -> dict[str, Any]:
    error = {"type": error_type, "message": _utf8(message), "traceback": _utf8(trace)}
    return {"t": token, "id": task_id, "s": ERR, "e": error}


def _utf8(text: str) -> str:
    """orjson refuses lone surrogates; escape them."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
