"""Operations on one task, wherever it is in its life: find it, wait for it,
cancel, pause, resume or re-rank it.  Each is a short sequence of the engine's
verbs (``move``, ``arm``, ``disarm``, ``settle``), so every change still goes
through the engine's one door.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asched.engine import store_watch
from asched.engine.attempts import CANCEL_REQUESTED
from asched.errors import TaskHeldElsewhereError, TaskNotFoundError, TaskTimeoutError
from asched.middleware.audit import request_entry
from asched.model import Task, TaskLifecycle, TaskPriority
from asched.model.states import CANCELLED, PAUSED, QUEUED, RETRYING, RUNNING, SCHEDULED

if TYPE_CHECKING:
    from asched.engine.loop import Engine

_ARMED = (QUEUED, SCHEDULED, RETRYING)
#: How long a request to another worker is given to take effect before answering.
ASK_WAIT_S = 5.0
#: Per request: when the stored task shows it was dealt with, and whether it worked.
_OUTCOME: dict[str, tuple[Callable[[Task], bool], Callable[[Task], bool]]] = {
    "cancel": (lambda t: t.is_terminal, lambda t: t.lifecycle is CANCELLED),
    "pause": (lambda t: t.user_paused or t.lifecycle is RUNNING, lambda t: t.user_paused),
    "resume": (lambda t: not t.user_paused, lambda t: not t.is_terminal),
}


async def lookup(engine: Engine, task_id: str) -> Task:
    task = engine.active.get(task_id)
    if task is None and engine.writeback is not None:
        # A task that just settled is still dirty until the flusher hands it over.
        task = engine.writeback.dirty.get(task_id)
    if task is None:
        task = await engine.store.get(task_id)
        if task is None:
            raise TaskNotFoundError(task_id)
    return task


async def list_tasks(
    engine: Engine, state: TaskLifecycle | None, task_type: str | None, limit: int | None
) -> list[Task]:
    if engine.writeback is not None and engine.writeback.dirty:
        await engine.writeback.flush()  # hand over what this loop changed
    live = engine.active
    if engine.memory is not None or not live:
        return await engine.store.list_tasks(state, task_type, limit)
    # A durable store never holds SCHEDULED (armed here; the row says QUEUED): the
    # tasks this process holds are listed as it sees them, like get_task_status.
    stored: list[Task] = []
    if state is not SCHEDULED:
        more = None if limit is None else limit + len(live)
        stored = await engine.store.list_tasks(state, task_type, more)
    merged = {t.id: t for t in stored if t.id not in live}
    for task in live.values():
        if (state is None or task.lifecycle is state) and (
            task_type is None or task.type == task_type
        ):
            merged[task.id] = task
    found = sorted(merged.values(), key=lambda t: (t.due_s, t.priority))
    return found if limit is None else found[:limit]


async def wait(engine: Engine, task_id: str, timeout_s: float | None) -> Task:
    task = await lookup(engine, task_id)
    if task.is_terminal:
        return task
    future: asyncio.Future[Task] = asyncio.get_running_loop().create_future()
    engine.waiters.setdefault(task_id, []).append(future)
    # Another worker may run it: follow the store too, whichever ends first.
    watcher = (
        None
        if engine.memory is not None
        else asyncio.ensure_future(_ended_in_store(engine, task_id, future))
    )
    try:
        async with asyncio.timeout(timeout_s):
            return await future
    except TimeoutError:
        raise TaskTimeoutError(task_id, timeout_s or 0.0, "wait") from None
    finally:
        if watcher is not None:
            watcher.cancel()
        waiting = engine.waiters.get(task_id)
        if waiting and future in waiting:
            waiting.remove(future)


async def _ended_in_store(engine: Engine, task_id: str, future: asyncio.Future[Task]) -> None:
    stored = await store_watch.until_ended(engine, task_id, None)
    if stored is not None and not future.done():
        future.set_result(stored)


async def cancel(
    engine: Engine, task_id: str, reason: str, entry: dict[str, Any] | None = None
) -> bool:
    """Cancel a task; ``entry`` is the audit record of the request (who asked), made
    here when not given."""
    if not engine.holds(task_id):
        return await _cancel_held_elsewhere(engine, task_id, reason)
    task = await lookup(engine, task_id)
    if task.is_terminal:
        return False
    now = engine.clock.now()
    if task.lifecycle is RUNNING:
        engine.attempts.cancel(task, CANCEL_REQUESTED)
    else:
        engine.disarm(task)
        engine.deps.forget(task.id)
    task.metadata.audit_trail.append(entry or request_entry("cancel", reason))
    engine.move(task, TaskLifecycle.CANCELLED, now, reason)
    task.finished_s = now
    engine.settle(task)
    return True


async def _cancel_held_elsewhere(engine: Engine, task_id: str, reason: str) -> bool:
    """Cancel a stored task this process does not hold, under a lease: once CANCELLED
    is written no worker's claim is granted, and a holder's late write is refused.
    A task another worker leases (running it, say) is asked of that worker."""
    store = engine.store
    task = await lookup(engine, task_id)
    if task.is_terminal:
        return False
    now = engine.clock.now()
    leases = await store.claim([task_id], engine.owner, now, engine.config.lease_s)
    if not leases:
        return await _ask_owner(engine, task_id, "cancel", reason)
    task = await store.get(task_id) or task
    if task.is_terminal:
        await store.release(leases)
        return False
    task.metadata.audit_trail.append(request_entry("cancel", reason))
    engine.move(task, TaskLifecycle.CANCELLED, now, reason)
    task.finished_s = now
    engine.forget(task)  # written here, fenced by the lease, not by the write-back
    if await store.save([task], {task_id: leases[0]}):
        raise TaskHeldElsewhereError(task_id, "claimed")
    engine.settle(task)
    return True


async def _ask_owner(engine: Engine, task_id: str, action: str, reason: str) -> bool:
    """Leave a request for the worker holding the task, and give it a moment to act.
    True unless the task ended otherwise meanwhile (the request stays for whichever
    worker holds the task next)."""
    await engine.store.request_control(task_id, request_entry(action, reason))
    settled, succeeded = _OUTCOME[action]
    found = await store_watch.until(engine, task_id, settled, ASK_WAIT_S)
    return found is None or succeeded(found)


async def apply_request(engine: Engine, request: dict[str, Any]) -> None:
    """Carry out a request another process left for a task held here."""
    task_id, action = str(request["task_id"]), request["action"]
    entry = {k: v for k, v in request.items() if k != "task_id"}
    reason = str(request.get("reason") or f"{action} requested")
    if action == "cancel":
        await cancel(engine, task_id, reason, entry)
    elif action == "pause":
        await pause(engine, task_id, reason, entry)
    elif action == "resume":
        await resume(engine, task_id, reason)


async def pause(
    engine: Engine, task_id: str, reason: str, entry: dict[str, Any] | None = None
) -> bool:
    if engine.memory is None and not engine.holds(task_id):
        return await _change_held_elsewhere(engine, task_id, "pause", reason)
    task = await lookup(engine, task_id)
    if task.lifecycle is PAUSED:  # held by its dependencies: held by the user too
        task.user_paused = True
        task.metadata.audit_trail.append(entry or request_entry("pause", reason))
        engine.touch(task)
        return True
    if task.lifecycle not in _ARMED:
        return False
    engine.disarm(task)
    _hold(engine, task, entry or request_entry("pause", reason), reason)
    return True


def _hold(engine: Engine, task: Task, entry: dict[str, Any], reason: str) -> None:
    task.user_paused = True
    task.metadata.audit_trail.append(entry)
    engine.move(task, PAUSED, engine.clock.now(), reason)


async def resume(engine: Engine, task_id: str, reason: str) -> bool:
    if engine.memory is None and not engine.holds(task_id):
        return await _change_held_elsewhere(engine, task_id, "resume", reason)
    task = await lookup(engine, task_id)
    if task.lifecycle is not PAUSED or not task.user_paused:
        return False
    _let_go(engine, task, reason)
    writeback = engine.writeback
    if writeback is not None and task.id not in engine.deps:
        # Stored before it is armed: a start-claim refuses a row still paused by a user.
        fence = writeback.fence
        await engine.store.save([task], fence.fence_for([task]) if fence else None)
        writeback.dirty.pop(task.id, None)
    if task.id in engine.deps:
        engine.touch(task)  # still held by its dependencies
    else:
        engine.arm(task, engine.clock.now())
    return True


def _let_go(engine: Engine, task: Task, reason: str) -> None:
    task.user_paused = False
    task.metadata.audit_trail.append(request_entry("resume", reason))
    if task.id not in engine.deps:
        engine.move(task, QUEUED, engine.clock.now(), reason)


async def _change_held_elsewhere(engine: Engine, task_id: str, action: str, reason: str) -> bool:
    """Pause or resume a stored task this process does not hold: under a lease, or,
    when another worker leases it, as a request to that worker."""
    store = engine.store
    await lookup(engine, task_id)  # TaskNotFoundError for an unknown id
    leases = await store.claim([task_id], engine.owner, engine.clock.now(), engine.config.lease_s)
    if not leases:
        return await _ask_owner(engine, task_id, action, reason)
    try:
        task = await store.get(task_id)
        if task is None:
            return False
        if action == "pause":
            if task.lifecycle is PAUSED:
                task.user_paused = True
                task.metadata.audit_trail.append(request_entry("pause", reason))
            elif task.lifecycle in _ARMED:
                _hold(engine, task, request_entry("pause", reason), reason)
            else:
                return False
        elif task.lifecycle is PAUSED and task.user_paused:
            _let_go(engine, task, reason)  # a dependant stays PAUSED for its dependencies
        else:
            return False
        engine.forget(task)  # written here, fenced by the lease, not by the write-back
        return not await store.save([task], {task_id: leases[0]})
    finally:
        await store.release(leases)


async def set_priority(engine: Engine, task_id: str, level: TaskPriority) -> bool:
    task = await lookup(engine, task_id)
    if task.is_terminal or task.lifecycle is RUNNING:
        return False
    task.priority = level
    task.metadata.audit_trail.append(request_entry("set_priority", level.name))
    engine.line.reprioritize(task.id, level)
    engine.touch(task)
    return True
