"""The Store contract, continued: cluster-wide start rules.

Concurrency slots, GCRA rate budgets and shared circuit breakers are decided
inside ``claim_start_limited`` (one transaction or script with the lease), so
they hold for every owner on the store.  Run over every store through the
``store`` fixture of the main contract suite.
"""

from __future__ import annotations

import pytest
from test_store_contract import LEASE_S, T0, L, make_task
from test_store_contract import store as every_store

from asched import TaskValidationError
from asched.core.breaker import BreakerSettings, BreakerState
from asched.core.claims import BreakerNeed, ClaimNeed, RateNeed
from asched.model import Task
from asched.stores import Store
from asched.stores.base import Lease, StartClaim

#: the contract suite's fixture, under its own name: every test runs over every store
store = every_store
ONE_PER_C1 = ClaimNeed(slots=(("key:c1", 1),))


async def start(
    store: Store, tasks: list[Task], owner: str, now_s: float, need: ClaimNeed
) -> StartClaim:
    return await store.claim_start_limited(
        [t.id for t in tasks], owner, now_s, LEASE_S, {t.id: need for t in tasks}
    )


def ids(claim: StartClaim) -> tuple[list[str], list[str]]:
    return [x.task_id for x in claim.granted], [lease.task_id for lease, _ in claim.held]


async def finish(store: Store, task: Task, lease: Lease, state: L, now_s: float) -> None:
    """The holder writes what the engine would: RUNNING, then the attempt's end."""
    if task.lifecycle is not L.RUNNING:
        task.transition(L.RUNNING, now_s, None)
    task.transition(state, now_s, None)
    assert await store.save([task], {task.id: lease}) == []


async def test_a_key_slot_holds_across_owners_until_the_attempt_ends(store: Store) -> None:
    a, b = make_task(state=L.SCHEDULED), make_task(state=L.SCHEDULED)
    await store.insert([a, b])
    first = await start(store, [a], "p1", T0, ONE_PER_C1)
    assert ids(first) == ([a.id], [])
    held = await start(store, [b], "p2", T0 + 1, ONE_PER_C1)
    assert ids(held) == ([], [b.id])
    [(lease, hold)] = held.held
    assert (lease.owner, hold.kind, hold.name, hold.wake_at_s) == ("p2", "slot", "key:c1", None)
    assert "c1" in hold.reason
    assert await store.slots_held(["key:c1", "key:other"], T0 + 1) == {"key:c1": 1}
    # Held, not started: no attempt spent, nothing else changed, nobody else adopts it.
    stored_b = await store.get(b.id)
    assert stored_b is not None and stored_b.lifecycle is L.SCHEDULED
    assert await store.claim([b.id], "p3", T0 + 1, LEASE_S) == []

    await finish(store, a, first.granted[0], L.COMPLETED, T0 + 2)
    assert await store.slots_held(["key:c1"], T0 + 2) == {}
    again = await start(store, [b], "p2", T0 + 3, ONE_PER_C1)
    assert ids(again) == ([b.id], [])
    assert again.granted[0].crashes == 0


@pytest.mark.parametrize("how", ["retrying", "expired", "released", "taken over"])
async def test_a_slot_is_freed_by_every_end_of_its_lease(store: Store, how: str) -> None:
    a, b = make_task(state=L.SCHEDULED), make_task(state=L.SCHEDULED)
    await store.insert([a, b])
    [lease] = (await start(store, [a], "p1", T0, ONE_PER_C1)).granted
    later = T0 + 1
    if how == "retrying":  # the attempt failed and waits for its retry: no slot
        await finish(store, a, lease, L.RETRYING, T0 + 1)
    elif how == "expired":
        later = T0 + LEASE_S
    elif how == "released":
        await store.release([lease])
    else:
        assert await store.claim([a.id], "p3", T0 + LEASE_S, LEASE_S)
        later = T0 + LEASE_S
    assert ids(await start(store, [b], "p2", later, ONE_PER_C1)) == ([b.id], [])


async def test_one_claim_grants_up_to_the_limit_best_first(store: Store) -> None:
    tasks = [make_task(state=L.SCHEDULED) for _ in range(4)]
    await store.insert(tasks)
    need = ClaimNeed(slots=(("key:c1", 2), ("type:job", 3)))
    claim = await start(store, tasks, "p1", T0, need)
    assert ids(claim) == ([t.id for t in tasks[:2]], [t.id for t in tasks[2:]])
    other = make_task(state=L.SCHEDULED)
    await store.insert([other])
    by_type = await start(store, [other], "p2", T0, ClaimNeed(slots=(("type:job", 3),)))
    assert ids(by_type) == ([other.id], [])
    late = make_task(state=L.SCHEDULED)
    await store.insert([late])
    [(_, hold)] = (await start(store, [late], "p2", T0, ClaimNeed(slots=(("type:job", 3),)))).held
    assert hold.name == "type:job"


async def test_a_task_without_needs_starts_beside_held_ones(store: Store) -> None:
    a, b, c = (make_task(state=L.SCHEDULED) for _ in range(3))
    await store.insert([a, b, c])
    await start(store, [a], "p1", T0, ONE_PER_C1)
    claim = await store.claim_start_limited(
        [b.id, c.id], "p2", T0, LEASE_S, {b.id: ONE_PER_C1, c.id: ClaimNeed()}
    )
    assert ids(claim) == ([c.id], [b.id])


async def test_a_rate_budget_holds_for_every_owner(store: Store) -> None:
    tasks = [make_task(state=L.SCHEDULED) for _ in range(4)]
    await store.insert(tasks)
    need = ClaimNeed(rate=RateNeed("upload:c1", interval_s=10.0, tolerance_s=10.0))
    assert ids(await start(store, tasks[:1], "p1", T0, need)) == ([tasks[0].id], [])
    assert ids(await start(store, tasks[1:2], "p2", T0, need)) == ([tasks[1].id], [])  # burst 1
    refused = await start(store, tasks[2:3], "p3", T0 + 1, need)
    [(_, hold)] = refused.held
    assert (hold.kind, hold.wake_at_s) == ("rate", pytest.approx(T0 + 10))
    assert ids(await start(store, tasks[2:4], "p3", T0 + 10, need)) == (
        [tasks[2].id],
        [tasks[3].id],
    )


SETTINGS = BreakerSettings(failure_threshold=2, recovery_s=30.0, half_open_max_calls=1)
GUARDED = ClaimNeed(breaker=BreakerNeed("api", SETTINGS))


async def test_a_breaker_opened_by_one_owner_holds_every_owner(store: Store) -> None:
    tasks = [make_task(state=L.SCHEDULED) for _ in range(5)]
    await store.insert(tasks)
    first = await start(store, tasks[:2], "p1", T0, GUARDED)
    assert ids(first)[0] == [tasks[0].id, tasks[1].id]
    assert first.admitted[tasks[0].id] == ("api", 0)
    assert (await store.report_breaker("api", SETTINGS, 0, "failed", T0 + 1))[1] == []
    record, [opened] = await store.report_breaker("api", SETTINGS, 0, "failed", T0 + 2)
    assert (record.state, record.generation) == ("open", 1)
    assert (opened.from_state, opened.to_state) == (BreakerState.CLOSED, BreakerState.OPEN)
    [record] = await store.breaker_records()
    assert (record.name, record.state, record.open_until_s) == ("api", "open", T0 + 32)

    held = await start(store, tasks[2:3], "p2", T0 + 3, GUARDED)
    [(_, hold)] = held.held
    assert (hold.kind, hold.wake_at_s) == ("breaker", T0 + 32)
    stored = await store.get(tasks[2].id)
    assert stored is not None and stored.lifecycle is L.SCHEDULED

    # Half open: exactly one trial across the owners; its success closes the breaker.
    trial = await start(store, tasks[2:3], "p2", T0 + 32, GUARDED)
    assert ids(trial) == ([tasks[2].id], [])
    assert [t.to_state for t in trial.transitions] == [BreakerState.HALF_OPEN]
    assert trial.breakers["api"].state == "half_open"
    [(_, busy)] = (await start(store, tasks[3:4], "p3", T0 + 33, GUARDED)).held
    assert (busy.kind, busy.wake_at_s) == ("breaker", None)
    generation = trial.admitted[tasks[2].id][1]
    _, [closed] = await store.report_breaker("api", SETTINGS, generation, "succeeded", T0 + 34)
    assert closed.to_state is BreakerState.CLOSED
    assert ids(await start(store, tasks[3:5], "p3", T0 + 35, GUARDED))[0] == [
        tasks[3].id,
        tasks[4].id,
    ]


async def test_an_outcome_from_an_older_generation_counts_for_nothing(store: Store) -> None:
    one = BreakerSettings(failure_threshold=1, recovery_s=5.0)
    assert len((await store.report_breaker("api", one, 0, "failed", T0))[1]) == 1
    assert (await store.report_breaker("api", one, 0, "failed", T0 + 1))[1] == []
    [record] = await store.breaker_records()
    assert (record.state, record.generation) == ("open", 1)


async def test_a_bad_outcome_names_the_field(store: Store) -> None:
    with pytest.raises(TaskValidationError, match="outcome"):
        await store.report_breaker("api", SETTINGS, 0, "exploded", T0)
