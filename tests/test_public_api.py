"""The public surface: what DESIGN.md promises is importable and works."""

from __future__ import annotations

import datetime
import threading

import pytest

import asched
from asched import SchedulerFacade, TaskLifecycle, TaskPriority


def test_all_names_exist_and_are_exported() -> None:
    for name in asched.__all__:
        assert hasattr(asched, name), name
    contract = {
        "Scheduler",
        "SchedulerFacade",
        "SchedulerConfig",
        "Task",
        "TaskLifecycle",
        "TaskPriority",
        "TaskMetadata",
        "retry",
        "circuit_breaker",
    }
    assert contract <= set(asched.__all__)


def test_every_error_is_an_asched_error() -> None:
    errors = [getattr(asched, n) for n in asched.__all__ if n.endswith("Error")]
    assert errors and all(issubclass(e, asched.AschedError) for e in errors)
    assert issubclass(asched.TaskNotFoundError, LookupError)
    assert issubclass(asched.TaskValidationError, ValueError)
    assert issubclass(asched.TaskTimeoutError, TimeoutError)


def test_spec_priorities_and_states() -> None:
    assert [(p.name, p.value) for p in TaskPriority] == [
        ("CRITICAL", 0),
        ("HIGH", 1),
        ("MEDIUM", 2),
        ("LOW", 3),
        ("BACKGROUND", 4),
    ]
    assert [s.name for s in TaskLifecycle] == [
        "CREATED",
        "QUEUED",
        "SCHEDULED",
        "PAUSED",
        "RUNNING",
        "RETRYING",
        "FAILED",
        "COMPLETED",
        "CANCELLED",
    ]


def test_the_seed_usage_example_runs_against_the_facade(capsys: pytest.CaptureFixture[str]) -> None:
    # The spec's example, unchanged but for its import line.
    scheduler = SchedulerFacade()
    try:
        task_id = scheduler.schedule_task(
            task_type="content_creation",
            task_data={
                "channel_id": "channel123",
                "content_type": "short_video",
                "theme": "tech_news",
            },
            execution_time=datetime.datetime.now() + datetime.timedelta(hours=2),
            priority=TaskPriority.HIGH,
        )
        status = scheduler.get_task_status(task_id)
        print(f"Task status: {status}")
        assert status is TaskLifecycle.SCHEDULED
        assert capsys.readouterr().out == "Task status: SCHEDULED\n"
        assert scheduler.cancel_task(task_id) is True
        assert scheduler.get_task_status(task_id) is TaskLifecycle.CANCELLED
        metrics = scheduler.get_system_load_metrics()
        assert {"tasks_per_minute", "success_rate_1h"} <= set(metrics)
        forecast = scheduler.get_task_execution_forecast(lookahead_hours=24)
        assert forecast["total"] == 0
    finally:
        scheduler.close()


def test_states_and_priorities_print_as_their_names_and_keep_their_numbers() -> None:
    assert str(TaskLifecycle.SCHEDULED) == f"{TaskLifecycle.SCHEDULED}" == "SCHEDULED"
    assert f"{TaskPriority.HIGH:>6}" == "  HIGH"
    assert TaskPriority.HIGH == 1 and TaskLifecycle.SCHEDULED == 3


def test_facade_runs_handlers_on_its_own_thread() -> None:
    with SchedulerFacade(strict_task_types=True) as facade:
        caller = threading.get_ident()

        @facade.task("where")
        async def where() -> int:
            return threading.get_ident()

        tid = facade.schedule_task("where")
        assert facade.wait_for(tid, timeout=10) != caller
        assert facade.get_task(tid).lifecycle is TaskLifecycle.COMPLETED
        with pytest.raises(asched.UnknownTaskTypeError):
            facade.schedule_task("nope")
