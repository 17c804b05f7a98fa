"""The facade is the whole API: every public coroutine method of Scheduler (but
the lifecycle ones) has a synchronous twin with the same parameters."""

from __future__ import annotations

import inspect

from asched import Scheduler, SchedulerFacade

# wait_crashed watches the loop that runs the facade itself: it belongs to the worker.
LIFECYCLE = {"start", "stop", "connect", "disconnect", "wait_crashed"}


def _params(fn: object) -> list[tuple[str, object, object]]:
    signature = inspect.signature(fn)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_every_scheduler_coroutine_has_a_facade_twin_with_the_same_parameters() -> None:
    coroutines = {
        name: fn
        for name, fn in inspect.getmembers(Scheduler, inspect.iscoroutinefunction)
        if not name.startswith("_") and name not in LIFECYCLE
    }
    assert len(coroutines) >= 19
    for name, fn in coroutines.items():
        twin = getattr(SchedulerFacade, name, None)
        assert twin is not None, f"SchedulerFacade lacks {name}"
        assert not inspect.iscoroutinefunction(twin), name
        assert _params(twin) == _params(fn), name


def test_recurring_schedules_from_code_without_a_loop() -> None:
    with SchedulerFacade() as facade:
        sid = facade.schedule_recurring("report", cron="0 9 * * MON-FRI", timezone="Europe/Madrid")
        assert [s["id"] for s in facade.list_schedules()] == [sid]
        assert facade.pause_schedule(sid) is True
        assert facade.get_schedule(sid)["state"] == "paused"
        forecast = facade.get_task_execution_forecast(48, bucket="day", task_type="report")
        assert forecast["bucket_s"] == 86400
        assert facade.remove_schedule(sid) is True
