"""The record codec's parts: the state record, the data and the result, stored
apart, read back as the whole record; and the fast ISO writer it uses."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asched import TaskLifecycle, TaskValidationError
from asched.model import Task
from asched.model.codec import decode_stored, encode_record, encode_result, encode_state, iso_utc
from asched.model.metadata import TaskMetadata

L = TaskLifecycle
T0 = 1_800_000_000.0
#: datetime's own range, as epoch seconds (UTC)
FIRST_S, LAST_S = -62_135_596_800.0, 253_402_300_799.0


def orjson_iso(epoch_s: float) -> str:
    text: str = orjson.loads(orjson.dumps(datetime.fromtimestamp(epoch_s, UTC)))
    return text


@given(st.floats(min_value=FIRST_S, max_value=LAST_S))
def test_iso_utc_writes_what_orjson_writes_for_the_datetime(epoch_s: float) -> None:
    assert iso_utc(epoch_s) == orjson_iso(epoch_s)


@pytest.mark.parametrize(
    "epoch_s", [0.0, -0.5, -1e-7, 0.9999996, 1.0000005, 2.5e-6, T0 + 0.1234565, LAST_S]
)
def test_iso_utc_rounds_microseconds_as_datetime_does(epoch_s: float) -> None:
    assert iso_utc(epoch_s) == orjson_iso(epoch_s)


@pytest.mark.parametrize("epoch_s", [math.nan, math.inf, -math.inf, 1e20, -1e20])
def test_iso_utc_refuses_what_datetime_refuses(epoch_s: float) -> None:
    with pytest.raises((ValueError, OverflowError, OSError)) as expected:
        datetime.fromtimestamp(epoch_s, UTC)
    with pytest.raises(expected.type):
        iso_utc(epoch_s)


def finished_task() -> Task:
    meta = TaskMetadata(datetime.fromtimestamp(T0, UTC), "ops", None, "m.f", ["a"], [{"x": 1}])
    task = Task("t1", "render", b'{"n":1,"s":"\\u00e9"}', created_s=T0, metadata=meta)
    task.transition(L.QUEUED, T0, None)
    task.transition(L.SCHEDULED, T0 + 1, "armed")
    task.transition(L.RUNNING, T0 + 2, None)
    task.transition(L.COMPLETED, T0 + 3.25, None)
    task.started_s, task.finished_s = T0 + 2, T0 + 3.25
    task.result = {"ok": [1, 2.5, None]}
    return task


@pytest.mark.parametrize("result", [None, 0, "", [], {"deep": {"x": 0.30000000000000004}}])
def test_the_stored_parts_read_back_as_the_whole_record(result: Any) -> None:
    task = finished_task()
    task.result = result
    state = encode_state(task)
    assert "data" not in orjson.loads(state) and "result" not in orjson.loads(state)
    back = decode_stored(state, task.data_json, encode_result(task), Task)
    assert back.to_dict() == task.to_dict() == orjson.loads(encode_record(task))
    assert back.data_json == task.data_json


def test_missing_parts_mean_empty_data_and_no_result() -> None:
    task = Task("t2", "job", created_s=T0)
    task.transition(L.QUEUED, T0, None)
    back = decode_stored(encode_state(task).decode(), None, None, Task)
    assert back.data == {} and back.result is None
    assert back.to_dict() == task.to_dict()


@pytest.mark.parametrize(
    ("data", "result", "field"),
    [(b"[1]", None, "data"), (b"{", None, "data"), (b"{}", b"{oops", "result")],
)
def test_a_bad_part_is_named(data: bytes, result: bytes | None, field: str) -> None:
    state = encode_state(finished_task())
    with pytest.raises(TaskValidationError, match=field):
        decode_stored(state, data, result, Task)
