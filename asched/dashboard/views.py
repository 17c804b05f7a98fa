"""Tasks, schedules and metrics as JSON-ready values for the dashboard API.

Values the API does not know (a metric key added later, a datetime, an enum)
pass through :func:`dumps` unchanged in meaning: datetimes become ISO 8601,
enums their names, anything else its ``str``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from asched.model import Task

_ERROR_PREVIEW = 200


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_fallback, option=orjson.OPT_NON_STR_KEYS)


def _fallback(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def iso(epoch_s: float | None) -> str | None:
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC).isoformat()


def task_summary(task: Task, now_s: float) -> dict[str, Any]:
    """One row of a task list: no payload, the error shortened."""
    started = task.started_s
    running = task.lifecycle.name == "RUNNING" and started is not None
    error = task.error
    if error is not None and len(error) > _ERROR_PREVIEW:
        error = error[:_ERROR_PREVIEW] + "…"
    return {
        "id": task.id,
        "type": task.type,
        "state": task.lifecycle.name,
        "priority": task.priority.name,
        "due": iso(task.due_s),
        "created": iso(task.created_s),
        "started": iso(started),
        "finished": iso(task.finished_s),
        "age_s": now_s - started if running and started is not None else None,
        "retries": task.retries,
        "max_retries": task.max_retries,
        "concurrency_key": task.concurrency_key,
        "tags": list(task.metadata.tags),
        "wait_reason": task.wait_reason,
        "error": error,
    }


def task_detail(task: Task, now_s: float) -> dict[str, Any]:
    """Everything about one task: data, history, result or error, audit trail."""
    record = task.to_dict()
    record["state"] = record.pop("lifecycle")
    record["history"] = [
        {"at": at, "from": before, "to": after, "reason": reason}
        for at, before, after, reason in record["history"]
    ]
    record["audit_trail"] = record["metadata"]["audit_trail"]
    record["age_s"] = task_summary(task, now_s)["age_s"]
    return record


def key_load(running: list[Task]) -> list[dict[str, Any]]:
    """Running tasks per concurrency key (tasks without a key are left out)."""
    per_key: dict[str, int] = {}
    for task in running:
        if task.concurrency_key is not None:
            per_key[task.concurrency_key] = per_key.get(task.concurrency_key, 0) + 1
    return [{"key": k, "running": n} for k, n in sorted(per_key.items())]


def numeric_values(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numbers among the metrics (top level only), for the history charts."""
    return {
        name: float(value)
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
