"""Bad input raises a clear AschedError naming the field, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from asched import (
    AschedError,
    DependencyError,
    Scheduler,
    TaskNotFoundError,
    TaskPriority,
    TaskValidationError,
    UnknownTaskTypeError,
)
from asched.testing import FakeClock


@pytest.fixture
async def scheduler(make_scheduler: Callable[..., Scheduler]) -> Scheduler:
    s = make_scheduler()

    @s.task("job")
    async def job(**kwargs: Any) -> None:
        return None

    await s.start()
    await s.schedule_task("job", delay=60)  # something already accepted
    return s


BAD_CALLS: list[tuple[str, dict[str, Any], type[AschedError], str]] = [
    ("unknown type", {"task_type": "nope"}, UnknownTaskTypeError, "task_type"),
    ("empty type", {"task_type": ""}, TaskValidationError, "task_type"),
    ("priority too high", {"priority": 7}, TaskValidationError, "priority"),
    ("priority negative", {"priority": -1}, TaskValidationError, "priority"),
    ("priority wrong type", {"priority": 1.5}, TaskValidationError, "priority"),
    ("priority bool", {"priority": True}, TaskValidationError, "priority"),
    ("priority unknown name", {"priority": "URGENT"}, TaskValidationError, "priority"),
    ("data not json", {"task_data": {"when": object()}}, TaskValidationError, "task_data"),
    ("data not a dict", {"task_data": [1, 2]}, TaskValidationError, "task_data"),
    ("negative delay", {"delay": -1}, TaskValidationError, "delay"),
    (
        "delay and time",
        {"delay": 1, "execution_time": datetime.now(UTC)},
        TaskValidationError,
        "delay",
    ),
    ("time not datetime", {"execution_time": "tomorrow"}, TaskValidationError, "execution_time"),
    ("unknown dependency", {"dependencies": ["missing"]}, DependencyError, "dependencies"),
    ("dependencies as str", {"dependencies": "abc"}, TaskValidationError, "dependencies"),
    ("bad timeout", {"timeout": 0}, TaskValidationError, "timeout"),
    ("bad retries", {"max_retries": -1}, TaskValidationError, "max_retries"),
    ("bad backoff", {"backoff_factor": 0.5}, TaskValidationError, "backoff_factor"),
    ("bad executor", {"executor": "gpu"}, TaskValidationError, "executor"),
    ("bad key", {"concurrency_key": 5}, TaskValidationError, "concurrency_key"),
]


@pytest.mark.parametrize(
    ("case", "kwargs", "error", "field"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS]
)
async def test_bad_input_is_named_and_changes_nothing(
    scheduler: Scheduler, case: str, kwargs: dict[str, Any], error: type[AschedError], field: str
) -> None:
    before = [t.to_dict() for t in await scheduler.list_tasks()]
    kwargs = {"task_type": "job", **kwargs}
    with pytest.raises(error) as raised:
        await scheduler.schedule_task(**kwargs)
    assert isinstance(raised.value, ValueError)
    assert raised.value.field == field  # type: ignore[attr-defined]
    assert field in str(raised.value)
    assert [t.to_dict() for t in await scheduler.list_tasks()] == before


async def test_unknown_type_is_also_a_lookup_error(scheduler: Scheduler) -> None:
    with pytest.raises(LookupError, match="registered types: job"):
        await scheduler.schedule_task("publish")


@pytest.mark.parametrize(
    "call",
    ["get_task", "get_task_status", "cancel_task", "pause_task", "resume_task", "wait_for"],
)
async def test_unknown_id_raises_task_not_found(scheduler: Scheduler, call: str) -> None:
    with pytest.raises(TaskNotFoundError, match="no task with id 'missing-id'") as raised:
        await getattr(scheduler, call)("missing-id")
    assert isinstance(raised.value, LookupError)


async def test_schedule_many_is_all_or_nothing(scheduler: Scheduler) -> None:
    before = len(await scheduler.list_tasks())
    with pytest.raises(TaskValidationError) as raised:
        await scheduler.schedule_many(
            [
                {"task_type": "job"},
                {"task_type": "job", "priority": 9},
            ]
        )
    assert raised.value.field == "priority"
    with pytest.raises(TaskValidationError, match=r"specs\[0\].colour"):
        await scheduler.schedule_many([{"task_type": "job", "colour": "red"}])
    assert len(await scheduler.list_tasks()) == before


async def test_naive_time_is_read_in_the_configured_zone(
    make_scheduler: Callable[..., Scheduler], clock: FakeClock
) -> None:
    madrid = make_scheduler(timezone="Europe/Madrid")
    local = make_scheduler()
    for s in (madrid, local):
        s.register("job", _noop)
        await s.start()
    naive = datetime(2027, 7, 1, 9, 30)
    in_madrid = await madrid.schedule_task("job", execution_time=naive)
    in_local = await local.schedule_task("job", execution_time=naive)
    aware = await madrid.schedule_task("job", execution_time=naive.replace(tzinfo=UTC))
    assert (await madrid.get_task(in_madrid)).scheduled_for == naive.replace(
        tzinfo=ZoneInfo("Europe/Madrid")
    )
    assert (await local.get_task(in_local)).scheduled_for == naive.astimezone()
    assert (await madrid.get_task(aware)).scheduled_for == naive.replace(tzinfo=UTC)
    assert (await madrid.get_task(in_madrid)).scheduled_for.tzinfo is UTC


async def test_seed_style_naive_now_plus_two_hours_means_two_hours_from_now(
    make_scheduler: Callable[..., Scheduler],
) -> None:
    s = make_scheduler(clock=None)
    s.register("job", _noop)
    async with s:
        tid = await s.schedule_task(
            "job", execution_time=datetime.now() + timedelta(hours=2), priority=TaskPriority.HIGH
        )
        due = (await s.get_task(tid)).scheduled_for
    assert abs((due - datetime.now(UTC)) - timedelta(hours=2)) < timedelta(seconds=5)


async def _noop() -> None:
    return None
