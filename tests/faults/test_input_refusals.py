"""Input the API refuses: a typed error naming the field, and nothing stored.

Unknown keywords are an ``UnknownOptionError`` (a ``TaskValidationError`` and a
``TypeError``); task data is plain JSON only; odd values for the other fields
are named.  A hypothesis test throws arbitrary values at ``schedule_task``.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asched import (
    AschedError,
    Scheduler,
    SchedulerFacade,
    TaskValidationError,
    UnknownOptionError,
)
from asched.model.validation import MAX_JSON_DEPTH


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@dataclass
class Point:
    x: int


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[Scheduler]:
    yield Scheduler(f"sqlite:///{tmp_path / 'refusals.db'}")


def _rows(path: Path) -> int:
    if not path.exists():
        return 0
    db = sqlite3.connect(path)
    try:
        (count,) = db.execute("SELECT count(*) FROM tasks").fetchone()
    finally:
        db.close()
    return int(count)


async def _refused(scheduler: Scheduler, **kwargs: Any) -> TaskValidationError:
    """Schedule ``kwargs`` on a started scheduler; return the error; check nothing was stored."""
    before = len(await scheduler.list_tasks())
    with pytest.raises(TaskValidationError) as raised:
        await scheduler.schedule_task("job", **kwargs)
    assert len(await scheduler.list_tasks()) == before
    return raised.value


def _register(scheduler: Scheduler) -> None:
    @scheduler.task("job")
    async def job(**kwargs: Any) -> None:
        return None


# -- unknown keywords ---------------------------------------------------------------


async def test_an_unknown_keyword_is_a_typed_error_and_a_type_error(scheduler: Scheduler) -> None:
    _register(scheduler)
    async with scheduler:
        error = await _refused(scheduler, prioirty="HIGH")
    assert isinstance(error, UnknownOptionError)
    assert isinstance(error, TypeError)
    assert isinstance(error, AschedError)
    assert error.field == "prioirty"
    assert "prioirty" in str(error) and "priority" in str(error)


async def test_schedule_many_names_the_unknown_field(scheduler: Scheduler) -> None:
    _register(scheduler)
    async with scheduler:
        with pytest.raises(UnknownOptionError) as raised:
            await scheduler.schedule_many([{"task_type": "job"}, {"task_type": "job", "when": 1}])
        assert await scheduler.list_tasks() == []
    assert raised.value.field == "specs[1].when"


def test_the_facade_refuses_an_unknown_keyword_the_same_way(tmp_path: Path) -> None:
    with SchedulerFacade(f"sqlite:///{tmp_path / 'facade.db'}") as facade:
        with pytest.raises(UnknownOptionError, match="bogus"):
            facade.schedule_task("job", bogus=1)
        with pytest.raises(TypeError):
            facade.schedule_task("job", retries=1)
        assert facade.list_tasks() == []


# -- task data: plain JSON only -------------------------------------------------------

NOT_JSON: list[tuple[str, Any, str]] = [
    ("NaN", {"x": math.nan}, "task_data.x=nan"),
    ("inf", {"x": [1.0, math.inf]}, "task_data.x[1]=inf"),
    ("-inf", {"a": {"b": -math.inf}}, "task_data.a.b=-inf"),
    ("datetime", {"when": datetime(2026, 1, 1, tzinfo=UTC)}, "task_data.when=datetime"),
    ("naive datetime", {"when": datetime(2026, 1, 1)}, "task_data.when=datetime"),
    ("date", {"day": date(2026, 1, 1)}, "task_data.day=date"),
    ("dataclass", {"p": Point(1)}, "task_data.p=Point"),
    ("set", {"s": {1, 2}}, "task_data.s=set"),
    ("bytes", {"b": b"raw"}, "task_data.b=bytes"),
    ("decimal", {"d": Decimal("1.5")}, "task_data.d=Decimal"),
    ("lone surrogate value", {"s": "ok \ud800"}, "lone surrogate"),
    ("lone surrogate key", {"\udfff": 1}, "lone surrogate"),
    ("int key", {1: "one"}, "task_data key=1"),
    ("too deep", nested(MAX_JSON_DEPTH + 1), f"deeper than {MAX_JSON_DEPTH}"),
    ("ten thousand deep", nested(10_000), f"deeper than {MAX_JSON_DEPTH}"),
    ("int past 64 bits", {"n": 2**64}, "task_data"),
]


@pytest.mark.parametrize(("case", "data", "named"), NOT_JSON, ids=[c[0] for c in NOT_JSON])
async def test_task_data_that_is_not_plain_json_is_refused(
    scheduler: Scheduler, case: str, data: dict[str, Any], named: str
) -> None:
    _register(scheduler)
    async with scheduler:
        error = await _refused(scheduler, task_data=data)
    assert error.field == "task_data"
    assert named in str(error)


async def test_plain_json_at_the_depth_limit_is_stored_as_given(scheduler: Scheduler) -> None:
    _register(scheduler)
    data = {"n": None, "f": 1.5, "neg": -(2**63), "big": 2**64 - 1, "s": "é \U0001f600"}
    deepest = nested(MAX_JSON_DEPTH)
    async with scheduler:
        plain = await scheduler.schedule_task("job", data, delay=60)
        deep = await scheduler.schedule_task("job", deepest, delay=60)
        assert (await scheduler.get_task(plain)).data == data
        assert (await scheduler.get_task(deep)).data == deepest


# -- odd values for the other fields -----------------------------------------------------

ODD: list[tuple[str, dict[str, Any], str]] = [
    ("naive year 1", {"execution_time": datetime(1, 1, 1)}, "execution_time"),
    ("aware year 1", {"execution_time": datetime(1, 1, 1, tzinfo=UTC)}, "execution_time"),
    ("datetime.max", {"execution_time": datetime.max}, "execution_time"),
    ("aware max", {"execution_time": datetime.max.replace(tzinfo=UTC)}, "execution_time"),
    ("delay inf", {"delay": math.inf}, "delay"),
    ("delay nan", {"delay": math.nan}, "delay"),
    ("delay 1e300", {"delay": 1e300}, "delay"),
    ("delay timedelta.max", {"delay": timedelta.max}, "delay"),
    ("max_retries 2**70", {"max_retries": 2**70}, "max_retries"),
    ("timeout inf", {"timeout": math.inf}, "timeout"),
    ("lone surrogate task_id", {"task_id": "id-\ud800"}, "task_id"),
    ("lone surrogate key", {"concurrency_key": "\udc00"}, "concurrency_key"),
    ("lone surrogate idempotency", {"idempotency_key": "\udc00"}, "idempotency_key"),
    ("lone surrogate tag", {"tags": ["ok", "\udc00"]}, "tags"),
    ("lone surrogate created_by", {"created_by": "\udc00"}, "created_by"),
    ("lone surrogate dependency", {"dependencies": ["\udc00"]}, "dependencies"),
]


@pytest.mark.parametrize(("case", "kwargs", "field"), ODD, ids=[c[0] for c in ODD])
async def test_odd_values_name_their_field(
    scheduler: Scheduler, case: str, kwargs: dict[str, Any], field: str
) -> None:
    _register(scheduler)
    async with scheduler:
        error = await _refused(scheduler, **kwargs)
    assert error.field == field
    assert field in str(error)


async def test_a_lone_surrogate_task_type_is_refused(scheduler: Scheduler) -> None:
    async with scheduler:
        with pytest.raises(TaskValidationError) as raised:
            await scheduler.schedule_task("job-\ud800")
    assert raised.value.field == "task_type"


# -- arbitrary values through schedule_task ----------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec=None, categories=None), max_size=8)
)
_ODDS = (
    st.datetimes()
    | st.dates()
    | st.binary(max_size=4)
    | st.decimals(allow_nan=False)
    | st.sets(st.integers(), max_size=2)
    | st.builds(Point, st.integers())
)
_VALUES = st.recursive(
    _SCALARS | _ODDS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children)
        | st.dictionaries(st.text(max_size=4) | st.integers(), children, max_size=3)
    ),
    max_leaves=8,
)


def _is_plain(value: Any) -> bool:
    """What the scheduler should accept: JSON's own types, finite, valid Unicode."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return _utf8(value)
    if isinstance(value, list | tuple):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _utf8(k) and _is_plain(v) for k, v in value.items())
    return False


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _as_stored(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_as_stored(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_stored(v) for k, v in value.items()}
    return value


_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "task_id": st.text(st.characters(codec=None, categories=None), max_size=6),
        "delay": st.floats() | st.integers(min_value=-(2**70), max_value=2**70),
        "execution_time": st.datetimes(timezones=st.none() | st.just(UTC)),
        "max_retries": st.integers(min_value=-(2**70), max_value=2**70),
        "timeout": st.floats(),
        "priority": st.integers(min_value=-3, max_value=9) | st.text(max_size=6),
        "concurrency_key": st.text(st.characters(codec=None, categories=None), max_size=4),
        "retry": st.integers(),
    },
)


def test_arbitrary_values_are_accepted_as_json_or_refused_with_a_typed_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "arbitrary.db"
    calls: list[Callable[[], None]] = []
    with SchedulerFacade(f"sqlite:///{path}", strict_task_types=False) as facade:

        @settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
        @given(data=st.dictionaries(st.text(max_size=4), _VALUES, max_size=3), options=_OPTIONS)
        def check(data: dict[str, Any], options: dict[str, Any]) -> None:
            before = len(facade.list_tasks())
            try:
                task_id = facade.schedule_task("job", data, **options)
            except AschedError as exc:
                assert isinstance(exc, TaskValidationError), exc
                assert len(facade.list_tasks()) == before
                return
            assert _is_plain(data), data
            assert "retry" not in options
            assert facade.get_task(task_id).data == _as_stored(data)
            calls.append(lambda: None)

        check()
        stored = len(facade.list_tasks())
    assert stored == len(calls) == _rows(path)
    assert calls, "no example was accepted"


async def test_schedule_recurring_refuses_an_unknown_keyword_the_same_way(
    scheduler: Scheduler,
) -> None:
    _register(scheduler)
    async with scheduler:
        with pytest.raises(UnknownOptionError) as raised:
            await scheduler.schedule_recurring("job", interval=60, retries=3)
        assert await scheduler.list_schedules() == []
    assert raised.value.field == "retries"
    assert isinstance(raised.value, TypeError)
