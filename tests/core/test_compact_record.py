"""The compact stored state (model/compact.py): it reads back as the task it was
written from, it is much smaller than the full form, and a record in the full
form -- what every file written before it holds -- still reads back as before."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from asched import TaskLifecycle, TaskPriority, TaskValidationError
from asched.model import Task
from asched.model.codec import decode_stored, encode_result, encode_state
from asched.model.compact import encode_compact
from asched.model.metadata import Origin, TaskMetadata

L = TaskLifecycle
T0 = 1_800_000_000.0
ORIGIN = Origin("ops", "app.jobs", "nightly", "/srv/app/jobs.py", 42, "host-1", 321)


def bare_task() -> Task:
    task = Task("t0", "noop", created_s=T0 + 0.1234567)
    task.transition(L.QUEUED, task.created_s, None)
    return task


def full_task() -> Task:
    meta = TaskMetadata(
        datetime.fromtimestamp(T0, UTC), "ops", "10.0.0.1", "m.f", ["a"], [{"x": 1}]
    )
    task = Task(
        "t1",
        "render",
        b'{"n":1}',
        TaskPriority.CRITICAL,
        created_s=T0,
        due_s=T0 + 60,
        executor_type="thread",
        max_retries=5,
        backoff_factor=1.5,
        timeout_s=30.0,
        dependencies=("a", "b"),
        concurrency_key="k",
        idempotency_key="once",
        metadata=meta,
    )
    task.transition(L.QUEUED, T0, None)
    task.transition(L.SCHEDULED, T0 + 1, "armed")
    task.transition(L.RUNNING, T0 + 2, None)
    task.transition(L.RETRYING, T0 + 3, "boom")
    task.started_s, task.finished_s, task.retries = T0 + 2, None, 1
    task.user_paused, task.wait_reason, task.error = True, "rate limit", "boom"
    task.result = {"partial": [1, 2.5]}
    task.origin = ORIGIN
    return task


def same(a: Task, b: Task) -> None:
    assert a.to_dict() == b.to_dict()
    for name in Task.__slots__:
        if name != "_handle":
            assert getattr(a, name) == getattr(b, name), name


@pytest.mark.parametrize("make", [bare_task, full_task])
def test_a_compact_record_reads_back_as_its_task(make: Any) -> None:
    task = make()
    back = decode_stored(encode_compact(task), task.data_json, encode_result(task), Task)
    same(back, task)


def test_a_task_with_an_origin_but_no_metadata_keeps_both_as_they_were() -> None:
    task = bare_task()
    task.origin = ORIGIN
    back = decode_stored(encode_compact(task).decode(), None, None, Task)
    same(back, task)
    assert back._metadata is None


def test_the_compact_record_leaves_defaults_out_and_is_a_third_of_the_full_one() -> None:
    task = bare_task()
    task.origin = ORIGIN
    for state in (L.SCHEDULED, L.RUNNING, L.COMPLETED):
        task.transition(state, T0 + 1, None)
    task.started_s = task.finished_s = T0 + 1
    compact = encode_compact(task)
    assert set(orjson.loads(compact)) == {
        "version", "id", "type", "lifecycle", "created_s", "history", "started_s",
        "finished_s", "origin",
    }  # fmt: skip
    assert len(compact) * 2.5 < len(encode_state(task))


@pytest.mark.parametrize("make", [bare_task, full_task])
def test_a_record_in_the_full_form_still_reads_back_as_before(make: Any) -> None:
    task = make()
    back = decode_stored(encode_state(task), task.data_json, encode_result(task), Task)
    assert back.to_dict() == task.to_dict()


def test_a_full_record_written_by_an_earlier_asched_reads_back_identically() -> None:
    text = (
        '{"version":1,"id":"a1","type":"noop","priority":"HIGH","lifecycle":"COMPLETED",'
        '"created_at":"2027-01-15T08:00:00.250000+00:00",'
        '"scheduled_for":"2027-01-15T08:00:05+00:00",'
        '"started_at":"2027-01-15T08:00:05.500000+00:00",'
        '"completed_at":"2027-01-15T08:00:06+00:00","executor_type":"async","retries":0,'
        '"max_retries":3,"backoff_factor":2.0,"timeout":null,"dependencies":[],'
        '"concurrency_key":null,"idempotency_key":null,"user_paused":false,'
        '"wait_reason":null,"error":null,"history":['
        '["2027-01-15T08:00:00.250000+00:00","CREATED","QUEUED",null],'
        '["2027-01-15T08:00:05+00:00","QUEUED","SCHEDULED",null],'
        '["2027-01-15T08:00:05.500000+00:00","SCHEDULED","RUNNING",null],'
        '["2027-01-15T08:00:06+00:00","RUNNING","COMPLETED",null]],'
        '"metadata":{"created_at":"2027-01-15T08:00:00.250000+00:00","created_by":"ops",'
        '"source_ip":null,"source_component":"app.jobs.nightly","tags":[],"audit_trail":[],'
        '"origin":["ops","app.jobs","nightly","/srv/app/jobs.py",42,"host-1",321]}}'
    )
    task = decode_stored(text, b'{"n":2}', b'"done"', Task)
    start = datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()
    assert (task.id, task.type, task.priority, task.lifecycle) == ("a1", "noop", 1, L.COMPLETED)
    assert (task.created_s, task.due_s) == (start + 0.25, start + 5)
    assert (task.started_s, task.finished_s) == (start + 5.5, start + 6)
    assert task.data == {"n": 2} and task.result == "done"
    assert task.origin == ORIGIN
    assert [(h.from_state, h.to_state) for h in task.history][-1] == (L.RUNNING, L.COMPLETED)
    assert task.metadata.created_by == "ops"
    expected = orjson.loads(text)
    expected["data"], expected["result"] = {"n": 2}, "done"
    assert task.to_dict() == expected
    # Written again, it goes compact and still reads back the same.
    again = decode_stored(encode_compact(task), task.data_json, encode_result(task), Task)
    assert again.to_dict() == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"created_s": "yesterday"}, "created_s"),
        ({"lifecycle": "DONE"}, "lifecycle"),
        ({"priority": 2}, "priority"),
        ({"history": [T0, "QUEUED"]}, "history"),
        ({"history": [T0, "LOST", None]}, "history"),
        ({"retries": "three"}, "retries"),
        ({"dependencies": [1]}, "dependencies"),
        ({"origin": ["x"]}, "origin"),
        ({"metadata": {"tags": "a"}}, "metadata.tags"),
        ({"id": ""}, "id"),
    ],
)
def test_a_bad_compact_field_is_named(change: dict[str, Any], field: str) -> None:
    record = orjson.loads(encode_compact(bare_task())) | change
    with pytest.raises(TaskValidationError, match=field):
        decode_stored(orjson.dumps(record), None, None, Task)


@pytest.mark.parametrize("due_s", [1e14, -1e14, float("nan")])
def test_a_time_the_full_form_cannot_write_is_refused(due_s: float) -> None:
    task = Task("far", "noop", created_s=T0, due_s=due_s)
    with pytest.raises(ValueError):
        encode_compact(task)
