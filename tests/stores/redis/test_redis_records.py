"""The Redis store's fast record reader gives exactly what Task.from_json gives."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from asched import TaskLifecycle, TaskMetadata, TaskPriority, TaskValidationError
from asched.model import Task
from asched.model.codec import encode_record
from asched.model.metadata import Origin
from asched.stores.redis.records import decode_record

L = TaskLifecycle


def _slots(task: Task) -> dict[str, object]:
    """Every field; metadata as the property builds it (a default one may be built late)."""
    found = {name: getattr(task, name) for name in Task.__slots__ if name != "_metadata"}
    found["metadata"] = task.metadata
    return found


def _plain() -> Task:
    task = Task("plain", "job", b'{"n":1}', created_s=1_700_000_000.5, due_s=1_700_000_100.25)
    task.transition(L.QUEUED, 1_700_000_000.5, None)
    return task


def _full() -> Task:
    """Every field set to something other than its default."""
    task = Task(
        "full",
        "content_creation",
        orjson.dumps({"channel_id": "c1", "nested": {"list": [1, 2.5, None, "ñ"]}}),
        TaskPriority.HIGH,
        created_s=1_700_000_000.25,
        due_s=1_700_003_600.5,
        executor_type="thread",
        max_retries=5,
        backoff_factor=1.5,
        timeout_s=12.5,
        dependencies=("dep-a", "dep-b"),
        concurrency_key="channel:c1",
        idempotency_key="video-42",
        metadata=TaskMetadata(
            created_at=datetime.fromtimestamp(1_700_000_000, UTC),
            created_by="bot",
            source_ip="10.0.0.7",
            source_component="planner",
            tags=["video", "tech"],
            audit_trail=[{"event": "created", "by": "bot"}],
        ),
    )
    for i, state in enumerate((L.QUEUED, L.SCHEDULED, L.RUNNING, L.RETRYING, L.RUNNING)):
        task.transition(state, 1_700_000_010 + i, "attempt 1 failed" if i == 3 else None)
    task.transition(L.COMPLETED, 1_700_000_016, "done")
    task.retries, task.started_s, task.finished_s = 1, 1_700_000_014.5, 1_700_000_015.75
    task.result = {"video_id": "v9", "ok": True}
    task.error, task.user_paused, task.wait_reason = "RuntimeError: boom", True, "rate limit"
    task.origin = Origin("bot", "app.planner", "plan", "/srv/app/planner.py", 42, "host-1", 4242)
    return task


def _running() -> Task:
    task = _plain()
    task.priority = TaskPriority.CRITICAL
    task.timeout_s = 3
    for state in (L.SCHEDULED, L.RUNNING):
        task.transition(state, 1_700_000_101.0, "go")
    task.started_s = 1_700_000_101.0
    task.result = [1, {"a": None}]
    return task


@pytest.mark.parametrize("make", [_plain, _full, _running])
def test_the_fast_reader_agrees_with_from_json(make: object) -> None:
    task = make()  # type: ignore[operator]
    raw = encode_record(task)
    fast, slow = decode_record(raw), Task.from_json(raw)
    assert _slots(fast) == _slots(slow)
    assert fast.to_dict() == task.to_dict()


def test_an_older_or_edited_record_takes_the_validating_path() -> None:
    record = orjson.loads(encode_record(_plain()))
    record["lifecycle"] = "queued"  # from_dict accepts any case
    del record["version"]
    assert decode_record(orjson.dumps(record)).lifecycle is L.QUEUED
    record["retries"] = "three"
    with pytest.raises(TaskValidationError) as caught:
        decode_record(orjson.dumps(record))
    assert caught.value.field == "retries"
