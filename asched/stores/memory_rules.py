"""MemoryStore's cluster-wide start rules: concurrency slots, rate budgets and
breaker records in dicts (the rules are :mod:`asched.core.claims`).

Schedulers sharing one MemoryStore in one process see the same slots, budgets
and breakers, as processes sharing a file do.  A slot is held while the lease
it was granted with is the task's valid lease and no save has written a state
other than RUNNING since.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import Counter
from collections.abc import Mapping

from asched.core.breaker import BreakerSettings, BreakerTransition
from asched.core.claims import BreakerRecord, ClaimNeed, breaker_outcome, plan_claims
from asched.model import Task
from asched.model.states import RUNNING
from asched.stores.base import StartClaim, Store
from asched.stores.leases import Lease


class MemoryRules(Store):
    """The rule steps of :class:`asched.stores.memory.MemoryStore`."""

    _tasks: dict[str, Task]
    _leases: dict[str, Lease]

    def __init__(self) -> None:  # called by MemoryStore.__init__, after Store's
        #: task id -> (token of the lease it started under, slot names it holds)
        self._slots: dict[str, tuple[int, tuple[str, ...]]] = {}
        self._tats: dict[str, float] = {}
        self._breakers: dict[str, BreakerRecord] = {}

    @abstractmethod
    def _grant(self, task_id: str, owner: str, expires_s: float) -> Lease: ...

    @abstractmethod
    def _free(self, task_id: str, owner: str, now_s: float) -> bool: ...

    def _saved_state(self, task: Task) -> None:
        """A save went through: an attempt that left RUNNING gives its slots back."""
        if task.lifecycle is not RUNNING:
            self._slots.pop(task.id, None)

    def _holding(self, now_s: float, skip: Mapping[str, object]) -> Counter[str]:
        held: Counter[str] = Counter()
        for task_id, (token, names) in list(self._slots.items()):
            lease = self._leases.get(task_id)
            if lease is None or lease.token != token or lease.expires_s <= now_s:
                del self._slots[task_id]  # ended, expired or taken over: freed
            elif task_id not in skip:
                held.update(names)
        return held

    async def _claim_start_limited(
        self,
        task_ids: list[str],
        owner: str,
        now_s: float,
        expires_s: float,
        needs: Mapping[str, ClaimNeed],
    ) -> StartClaim:
        free = [
            task_id
            for task_id in task_ids
            if (task := self._tasks.get(task_id)) is not None
            and not task.is_terminal
            and self._free(task_id, owner, now_s)
        ]
        held = self._holding(now_s, dict.fromkeys(free))
        plan = plan_claims(free, needs, held, self._tats, self._breakers, now_s)
        claim = StartClaim(admitted=plan.admitted, transitions=plan.transitions)
        for task_id in plan.granted:
            lease = self._grant(task_id, owner, expires_s)
            claim.granted.append(lease)
            need = needs.get(task_id)
            if need and need.slots:
                self._slots[task_id] = (lease.token, tuple(name for name, _ in need.slots))
            else:
                self._slots.pop(task_id, None)
        for task_id, hold in plan.holds.items():
            self._slots.pop(task_id, None)
            claim.held.append((self._grant(task_id, owner, expires_s), hold))
        self._tats.update(plan.tats)
        self._breakers.update(plan.breakers)
        claim.breakers = {n: BreakerRecord.from_json(r.to_json()) for n, r in plan.breakers.items()}
        return claim

    async def _slots_held(self, names: list[str], now_s: float) -> dict[str, int]:
        held = self._holding(now_s, {})
        return {name: held[name] for name in names if held[name]}

    async def _report_breaker(
        self,
        name: str,
        settings: BreakerSettings,
        generation: int,
        outcome: str,
        now_s: float,
    ) -> tuple[BreakerRecord, list[BreakerTransition]]:
        record = self._breakers.setdefault(name, BreakerRecord(name))
        changes = breaker_outcome(record, settings, generation, outcome, now_s)
        return BreakerRecord.from_json(record.to_json()), changes

    async def breaker_records(self) -> list[BreakerRecord]:
        return [BreakerRecord.from_json(r.to_json()) for r in self._breakers.values()]
