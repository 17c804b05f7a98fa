"""The cluster rules of the Store contract (schedules by revision, control
requests, the worker registry), run against every store like the rest of the
contract (the ``store`` fixture of ``test_store_contract``)."""

from __future__ import annotations

from typing import Any

import pytest
from test_store_contract import T0, make_task
from test_store_contract import store as store  # the fixture

from asched import ConfigError, TaskLifecycle, TaskValidationError
from asched.stores import Store
from asched.stores.base import worker_status

L = TaskLifecycle


def _schedule(schedule_id: str = "s1", revision: int = 1, **more: Any) -> dict[str, Any]:
    return {"version": 1, "id": schedule_id, "revision": revision, "fired": 0, **more}


# -- schedules ---------------------------------------------------------------------------


async def test_create_schedule_stores_only_the_first(store: Store) -> None:
    assert await store.create_schedule(_schedule(anchor=1.0)) is None
    found = await store.create_schedule(_schedule(anchor=2.0))
    assert found is not None and found["anchor"] == 1.0
    assert [r["anchor"] for r in await store.load_schedules()] == [1.0]


async def test_progress_is_written_onto_its_revision_only(store: Store) -> None:
    await store.create_schedule(_schedule())
    assert await store.save_schedule_progress([_schedule(fired=3)]) == []
    assert (await store.load_schedules())[0]["fired"] == 3
    await store.save_schedules([_schedule(revision=2, paused=True)])  # redefined elsewhere
    assert await store.save_schedule_progress([_schedule(fired=4)]) == ["s1"]
    (stored,) = await store.load_schedules()
    assert stored["paused"] is True and stored["fired"] == 0


async def test_progress_never_brings_back_a_removed_schedule(store: Store) -> None:
    await store.create_schedule(_schedule())
    await store.delete_schedules(["s1"])
    assert await store.save_schedule_progress([_schedule(fired=1), _schedule("s2")]) == [
        "s1",
        "s2",
    ]
    assert await store.load_schedules() == []


async def test_unfinished_ids_are_those_with_the_prefix(store: Store) -> None:
    tasks = [
        make_task(task_id="s1@1000"),
        make_task(task_id="s1@2000", state=L.RUNNING),
        make_task(task_id="s1@3000", state=L.COMPLETED),
        make_task(task_id="s10@1000"),
        make_task(task_id="s2@1000"),
    ]
    await store.insert(tasks)
    assert sorted(await store.unfinished_ids("s1@")) == ["s1@1000", "s1@2000"]
    assert await store.unfinished_ids("none@") == []


# -- control requests -----------------------------------------------------------------------


async def test_the_owner_takes_the_requests_for_its_tasks(store: Store) -> None:
    mine, theirs = make_task(state=L.RUNNING), make_task(state=L.RUNNING)
    await store.insert([mine, theirs])
    await store.claim([mine.id], "w1", T0, 30)
    await store.claim([theirs.id], "w2", T0, 30)
    for task in (mine, theirs):
        await store.request_control(task.id, {"action": "cancel", "by": "ops", "reason": "r"})
    taken = await store.take_control_requests("w1")
    assert [(r["task_id"], r["action"], r["by"]) for r in taken] == [(mine.id, "cancel", "ops")]
    assert await store.take_control_requests("w1") == []  # taken once
    assert [r["task_id"] for r in await store.take_control_requests("w2")] == [theirs.id]


async def test_a_pause_never_replaces_a_cancel(store: Store) -> None:
    task = make_task()
    await store.insert([task])
    await store.claim([task.id], "w1", T0, 30)
    await store.request_control(task.id, {"action": "cancel"})
    await store.request_control(task.id, {"action": "pause"})
    assert [r["action"] for r in await store.take_control_requests("w1")] == ["cancel"]
    await store.request_control(task.id, {"action": "pause"})
    await store.request_control(task.id, {"action": "cancel"})
    assert [r["action"] for r in await store.take_control_requests("w1")] == ["cancel"]


async def test_requests_wait_for_an_owner_and_die_with_the_task(store: Store) -> None:
    task = make_task()
    await store.insert([task])
    await store.request_control(task.id, {"action": "cancel"})
    assert await store.take_control_requests("w1") == []  # nobody leases it yet
    (lease,) = await store.claim([task.id], "w1", T0, 30)
    assert [r["task_id"] for r in await store.take_control_requests("w1")] == [task.id]
    await store.request_control(task.id, {"action": "cancel"})
    task.transition(L.CANCELLED, T0 + 2, "gone")
    await store.save([task], {task.id: lease})
    assert await store.take_control_requests("w1") == []


async def test_a_bad_request_names_the_field(store: Store) -> None:
    with pytest.raises(TaskValidationError, match="action"):
        await store.request_control("x", {"action": "explode"})


# -- workers -----------------------------------------------------------------------------


def _worker(worker_id: str, started_s: float) -> dict[str, Any]:
    return {
        "id": worker_id,
        "host": "h",
        "pid": 7,
        "started_s": started_s,
        "heartbeat_s": started_s,
        "running": 0,
        "version": "1",
        "lease_s": 30.0,
    }


async def test_a_beat_may_carry_the_workers_figures_which_replace_the_last(
    store: Store,
) -> None:
    await store.register_worker(_worker("w1", T0))
    assert await store.heartbeat_worker("w1", T0 + 5, 2, {"completed_1h": 3, "p99": None})
    assert await store.heartbeat_worker("w1", T0 + 6, 1)  # no figures: the last stay
    (listed,) = await store.list_workers()
    assert (listed["running"], listed["figures"]) == (1, {"completed_1h": 3, "p99": None})
    assert await store.heartbeat_worker("w1", T0 + 7, 0, {"completed_1h": 4})
    (listed,) = await store.list_workers()
    assert (listed["heartbeat_s"], listed["figures"]) == (T0 + 7, {"completed_1h": 4})


async def test_workers_register_beat_and_leave(store: Store) -> None:
    await store.register_worker(_worker("w2", T0 + 1))
    await store.register_worker(_worker("w1", T0))
    assert await store.heartbeat_worker("w2", T0 + 10, 4)
    listed = await store.list_workers()
    assert [w["id"] for w in listed] == ["w1", "w2"]
    assert (listed[1]["heartbeat_s"], listed[1]["running"], listed[1]["pid"]) == (T0 + 10, 4, 7)
    await store.remove_worker("w1")
    assert not await store.heartbeat_worker("w1", T0 + 11, 0)
    assert [w["id"] for w in await store.list_workers()] == ["w2"]


async def test_a_worker_without_an_id_is_refused(store: Store) -> None:
    with pytest.raises(ConfigError, match="owner"):
        await store.register_worker({"id": ""})


def test_a_worker_is_lost_once_its_lease_passes() -> None:
    record = _worker("w1", T0)
    assert worker_status(record, T0 + 30) == "live"
    assert worker_status(record, T0 + 30.5) == "lost"
