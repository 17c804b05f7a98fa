from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asched.errors import InvalidTransitionError, TaskValidationError
from asched.model import (
    RECORD_VERSION,
    TERMINAL_STATES,
    TRANSITIONS,
    Task,
    TaskLifecycle,
    TaskMetadata,
    TaskPriority,
    Transition,
    can_transition,
)
from asched.model.validation import parse_lifecycle, parse_priority

L = TaskLifecycle
T0 = 1_700_000_000.25

# A path from CREATED to each state, written out independently of the table.
PATHS: dict[TaskLifecycle, list[TaskLifecycle]] = {
    L.CREATED: [],
    L.QUEUED: [L.QUEUED],
    L.SCHEDULED: [L.QUEUED, L.SCHEDULED],
    L.PAUSED: [L.QUEUED, L.PAUSED],
    L.RUNNING: [L.QUEUED, L.SCHEDULED, L.RUNNING],
    L.RETRYING: [L.QUEUED, L.SCHEDULED, L.RUNNING, L.RETRYING],
    L.FAILED: [L.QUEUED, L.SCHEDULED, L.RUNNING, L.FAILED],
    L.COMPLETED: [L.QUEUED, L.SCHEDULED, L.RUNNING, L.COMPLETED],
    L.CANCELLED: [L.CANCELLED],
}


def make_task(**kwargs: Any) -> Task:
    kwargs.setdefault("created_s", T0)
    return Task("t-1", "email", b'{"to": "a@b.c"}', TaskPriority.HIGH, **kwargs)


def task_in(state: TaskLifecycle) -> Task:
    task = make_task()
    for step, target in enumerate(PATHS[state]):
        task.transition(target, T0 + step, f"step {step}")
    assert task.lifecycle is state
    return task


# -- the transition table ----------------------------------------------------------


def test_table_shape() -> None:
    assert set(TRANSITIONS) == set(TaskLifecycle)
    assert {s for s in TaskLifecycle if s.is_terminal} == TERMINAL_STATES
    assert {L.COMPLETED, L.FAILED, L.CANCELLED} == TERMINAL_STATES
    for state, targets in TRANSITIONS.items():
        assert state not in targets
        assert (not targets) == state.is_terminal
        if not state.is_terminal:
            assert L.CANCELLED in targets
    assert L.CREATED not in set().union(*TRANSITIONS.values())


def test_the_typical_path_is_allowed() -> None:
    path = [L.CREATED, L.QUEUED, L.SCHEDULED, L.RUNNING, L.COMPLETED]
    for current, target in pairwise(path):
        assert can_transition(current, target)


@pytest.mark.parametrize("target", list(TaskLifecycle), ids=lambda s: s.name)
@pytest.mark.parametrize("current", list(TaskLifecycle), ids=lambda s: s.name)
def test_every_transition(current: TaskLifecycle, target: TaskLifecycle) -> None:
    task = task_in(current)
    before = task.history
    now = T0 + 100.5
    if target in TRANSITIONS[current]:
        assert can_transition(current, target)
        task.transition(target, now, "because")
        assert task.lifecycle is target
        assert task.is_terminal == (target in TERMINAL_STATES)
        assert task.history == [
            *before,
            Transition(datetime.fromtimestamp(now, UTC), current, target, "because"),
        ]
    else:
        assert not can_transition(current, target)
        with pytest.raises(InvalidTransitionError) as caught:
            task.transition(target, now, "because")
        assert caught.value.task_id == "t-1"
        assert caught.value.current is current
        assert caught.value.target is target
        assert current.name in str(caught.value)
        assert target.name in str(caught.value)
        assert task.lifecycle is current
        assert task.history == before


def test_history_entries_are_from_to_reason_time() -> None:
    task = make_task()
    task.transition(L.QUEUED, T0 + 1)
    task.transition(L.SCHEDULED, T0 + 2.5, "armed")
    assert task.history == [
        Transition(datetime.fromtimestamp(T0 + 1, UTC), L.CREATED, L.QUEUED, None),
        Transition(datetime.fromtimestamp(T0 + 2.5, UTC), L.QUEUED, L.SCHEDULED, "armed"),
    ]
    entry = task.history[1]
    assert (entry.from_state, entry.to_state, entry.reason) == (L.QUEUED, L.SCHEDULED, "armed")
    assert entry.at.tzinfo is UTC


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(list(TaskLifecycle)), st.none() | st.text(max_size=5)),
        max_size=30,
    )
)
def test_random_transition_sequences_leave_a_valid_chain(
    steps: list[tuple[TaskLifecycle, str | None]],
) -> None:
    task = make_task()
    accepted = 0
    for i, (target, reason) in enumerate(steps):
        current = task.lifecycle
        try:
            task.transition(target, T0 + i, reason)
        except InvalidTransitionError:
            assert target not in TRANSITIONS[current]
            assert task.lifecycle is current
        else:
            accepted += 1
    history = task.history
    assert len(history) == accepted
    previous = L.CREATED
    for entry in history:
        assert entry.from_state is previous
        assert entry.to_state in TRANSITIONS[entry.from_state]
        previous = entry.to_state
    assert previous is task.lifecycle
    assert [e.at for e in history] == sorted(e.at for e in history)


@given(data=st.data())
def test_walks_along_allowed_edges_always_succeed(data: st.DataObject) -> None:
    task = make_task()
    walked = [L.CREATED]
    for i in range(data.draw(st.integers(0, 20))):
        allowed = sorted(TRANSITIONS[task.lifecycle], key=lambda s: s.value)
        if not allowed:
            assert task.is_terminal
            break
        target = data.draw(st.sampled_from(allowed))
        task.transition(target, T0 + i, f"#{i}")
        walked.append(target)
    assert task.lifecycle is walked[-1]
    assert [(e.from_state, e.to_state) for e in task.history] == list(pairwise(walked))
    assert [e.reason for e in task.history] == [f"#{i}" for i in range(len(walked) - 1)]


# -- serialisation -----------------------------------------------------------------


def rich_task() -> Task:
    meta = TaskMetadata(
        created_at=datetime.fromtimestamp(T0 - 10, UTC),
        created_by="alice",
        source_ip="10.0.0.1",
        source_component="api",
        tags=["billing", "nightly"],
        audit_trail=[{"event": "created", "by": "alice"}],
    )
    task = Task(
        "t-42",
        "report",
        orjson.dumps({"month": 3, "nested": {"a": [1, 2.5, None]}}),
        TaskPriority.CRITICAL,
        created_s=T0,
        due_s=T0 + 60.125,
        executor_type="thread",
        max_retries=5,
        backoff_factor=1.5,
        timeout_s=30.0,
        dependencies=("t-1", "t-2"),
        concurrency_key="tenant-9",
        idempotency_key="idem-1",
        metadata=meta,
    )
    task.transition(L.QUEUED, T0 + 1, None)
    task.transition(L.SCHEDULED, T0 + 2, "armed")
    task.transition(L.RUNNING, T0 + 60.5, None)
    task.transition(L.RETRYING, T0 + 61, "boom")
    task.transition(L.RUNNING, T0 + 63, None)
    task.transition(L.COMPLETED, T0 + 64.000001, "done")
    task.started_s = T0 + 63
    task.finished_s = T0 + 64.000001
    task.retries = 1
    task.user_paused = True
    task.result = {"rows": [1, 2, 3], "ok": True}
    task.error = "boom"
    return task


def assert_same_task(a: Task, b: Task) -> None:
    for name in (
        "id",
        "type",
        "data",
        "priority",
        "lifecycle",
        "created_at",
        "scheduled_for",
        "started_at",
        "completed_at",
        "executor_type",
        "retries",
        "max_retries",
        "backoff_factor",
        "timeout_s",
        "dependencies",
        "concurrency_key",
        "idempotency_key",
        "user_paused",
        "result",
        "error",
        "history",
        "metadata",
    ):
        assert getattr(a, name) == getattr(b, name), name


def test_dict_round_trip() -> None:
    task = rich_task()
    record = task.to_dict()
    assert record["version"] == RECORD_VERSION
    assert record["priority"] == "CRITICAL"
    assert record["lifecycle"] == "COMPLETED"
    assert record["dependencies"] == ["t-1", "t-2"]
    assert record["history"][3][1:] == ["RUNNING", "RETRYING", "boom"]
    assert record["metadata"]["tags"] == ["billing", "nightly"]
    again = Task.from_dict(copy.deepcopy(record))
    assert_same_task(task, again)
    assert again.dependencies == ("t-1", "t-2")
    assert again.to_dict() == record


def test_json_round_trip() -> None:
    task = rich_task()
    raw = task.to_json()
    assert isinstance(raw, bytes)
    assert orjson.loads(raw) == task.to_dict()
    assert_same_task(task, Task.from_json(raw))
    assert_same_task(task, Task.from_json(raw.decode()))


def test_round_trip_of_a_bare_task_with_default_metadata() -> None:
    task = make_task()
    again = Task.from_json(task.to_json())
    assert_same_task(task, again)
    assert again.metadata.created_at == datetime.fromtimestamp(T0, UTC)
    assert again.history == []


def test_from_dict_fills_defaults_for_optional_keys() -> None:
    record = {
        "id": "x",
        "type": "t",
        "data": {},
        "priority": 3,
        "lifecycle": "queued",
        "created_at": "2024-01-02T03:04:05+00:00",
    }
    task = Task.from_dict(record)
    created = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert task.priority is TaskPriority.LOW
    assert task.lifecycle is L.QUEUED
    assert task.created_s == created
    assert task.due_s == created
    assert (task.executor_type, task.max_retries, task.backoff_factor) == ("async", 3, 2.0)
    assert (task.retries, task.timeout_s, task.dependencies) == (0, None, ())
    assert task.started_s is None and task.finished_s is None
    assert task.user_paused is False
    assert task.history == []


def test_naive_dates_are_read_as_utc() -> None:
    record = make_task().to_dict()
    record["created_at"] = "2024-01-02T03:04:05"
    assert Task.from_dict(record).created_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


@given(
    created_s=st.floats(0, 4_000_000_000),
    due_delta=st.floats(-1e6, 1e6),
    reason=st.none() | st.text(),
    tags=st.lists(st.text(max_size=8), max_size=3),
)
def test_round_trip_is_stable_for_any_times_and_text(
    created_s: float, due_delta: float, reason: str | None, tags: list[str]
) -> None:
    task = Task(
        "id",
        "type",
        created_s=created_s,
        due_s=max(0.0, created_s + due_delta),
        metadata=TaskMetadata(created_at=datetime.fromtimestamp(created_s, UTC), tags=tags),
    )
    task.transition(L.QUEUED, created_s, reason)
    record = task.to_dict()
    again = Task.from_json(orjson.dumps(record))
    assert again.to_dict() == record
    assert again.history[0].reason == reason


Mutation = Callable[[dict[str, Any]], None]


def delete(key: str) -> Mutation:
    return lambda record: record.pop(key)


def put(key: str, value: Any) -> Mutation:
    return lambda record: record.__setitem__(key, value)


def put_meta(key: str, value: Any) -> Mutation:
    return lambda record: record["metadata"].__setitem__(key, value)


MALFORMED: list[tuple[str, Mutation, str]] = [
    ("missing id", delete("id"), "id"),
    ("missing type", delete("type"), "type"),
    ("missing data", delete("data"), "data"),
    ("missing priority", delete("priority"), "priority"),
    ("missing lifecycle", delete("lifecycle"), "lifecycle"),
    ("missing created_at", delete("created_at"), "created_at"),
    ("empty id", put("id", ""), "id"),
    ("id not a string", put("id", 5), "id"),
    ("type not a string", put("type", ["a"]), "type"),
    ("unknown priority name", put("priority", "urgent"), "priority"),
    ("priority out of range", put("priority", 7), "priority"),
    ("priority a bool", put("priority", True), "priority"),
    ("unknown lifecycle", put("lifecycle", "DONE"), "lifecycle"),
    ("lifecycle a number", put("lifecycle", 3), "lifecycle"),
    ("bad created_at", put("created_at", "yesterday"), "created_at"),
    ("created_at a number", put("created_at", 1700000000), "created_at"),
    ("created_at null", put("created_at", None), "created_at"),
    ("bad scheduled_for", put("scheduled_for", "2024-13-01T00:00:00"), "scheduled_for"),
    ("bad started_at", put("started_at", "nope"), "started_at"),
    ("bad completed_at", put("completed_at", [2024]), "completed_at"),
    ("data a list", put("data", [1, 2]), "data"),
    ("data a string", put("data", "{}"), "data"),
    ("data not JSON-serialisable", put("data", {"when": {1, 2}}), "data"),
    ("data with a non-string key", put("data", {1: "a"}), "data"),
    ("retries a string", put("retries", "3"), "retries"),
    ("retries a bool", put("retries", True), "retries"),
    ("max_retries a float", put("max_retries", 1.5), "max_retries"),
    ("backoff_factor a string", put("backoff_factor", "2"), "backoff_factor"),
    ("timeout a string", put("timeout", "10"), "timeout"),
    ("user_paused a string", put("user_paused", "yes"), "user_paused"),
    ("error a number", put("error", 5), "error"),
    ("dependencies a string", put("dependencies", "t-1"), "dependencies"),
    ("dependencies with a number", put("dependencies", ["t-1", 2]), "dependencies"),
    ("dependencies a dict", put("dependencies", {"t-1": True}), "dependencies"),
    ("newer version", put("version", RECORD_VERSION + 1), "version"),
    ("version a string", put("version", "1"), "version"),
    ("history not a list", put("history", "x"), "history"),
    ("history entry too short", put("history", [["2024-01-01T00:00:00", "QUEUED"]]), "history"),
    (
        "history bad time",
        put("history", [["later", "CREATED", "QUEUED", None]]),
        "history.at",
    ),
    (
        "history bad state",
        put("history", [["2024-01-01T00:00:00", "CREATED", "LIMBO", None]]),
        "history.to",
    ),
    ("metadata not an object", put("metadata", "x"), "metadata"),
    ("metadata tags a string", put_meta("tags", "a,b"), "metadata.tags"),
    ("metadata tags with a number", put_meta("tags", ["a", 1]), "metadata.tags"),
    ("metadata audit_trail a dict", put_meta("audit_trail", {}), "metadata.audit_trail"),
    ("metadata bad created_at", put_meta("created_at", "soon"), "metadata.created_at"),
]


@pytest.mark.parametrize(
    ("mutate", "field"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_records_name_the_field(mutate: Mutation, field: str) -> None:
    record = rich_task().to_dict()
    mutate(record)
    with pytest.raises(TaskValidationError) as caught:
        Task.from_dict(record)
    assert caught.value.field == field
    assert field in str(caught.value)


@pytest.mark.parametrize("record", [None, [], "task", 3])
def test_a_record_that_is_not_an_object(record: Any) -> None:
    with pytest.raises(TaskValidationError) as caught:
        Task.from_dict(record)
    assert caught.value.field == "task"


def test_from_json_rejects_invalid_json() -> None:
    with pytest.raises(TaskValidationError) as caught:
        Task.from_json(b"{not json")
    assert caught.value.field == "json"


# -- parse_priority / parse_lifecycle --------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(p, p) for p in TaskPriority],
        *[(p.value, p) for p in TaskPriority],
        *[(p.name, p) for p in TaskPriority],
        *[(p.name.lower(), p) for p in TaskPriority],
        ("High", TaskPriority.HIGH),
        (" background ", TaskPriority.BACKGROUND),
        ("cRiTiCaL", TaskPriority.CRITICAL),
    ],
)
def test_parse_priority_accepts(value: Any, expected: TaskPriority) -> None:
    assert parse_priority(value) is expected


@pytest.mark.parametrize("value", [5, -1, True, False, 2.0, "urgent", "", "2", None, [1]])
def test_parse_priority_rejects(value: Any) -> None:
    with pytest.raises(TaskValidationError) as caught:
        parse_priority(value, field="level")
    assert caught.value.field == "level"
    assert caught.value.value == value


def test_parse_lifecycle() -> None:
    assert parse_lifecycle(L.PAUSED) is L.PAUSED
    assert parse_lifecycle("retrying") is L.RETRYING
    for bad in ("done", 5, None):
        with pytest.raises(TaskValidationError) as caught:
            parse_lifecycle(bad)
        assert caught.value.field == "lifecycle"
