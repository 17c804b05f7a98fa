"""RedisStore's steps for the cluster-wide start rules (the scripts are in
:mod:`asched.stores.redis.rule_scripts`).

A start-claim reads and takes slots, rate budgets and breaker trials in the
one Lua script that grants the leases.  An outcome is folded into a breaker
record by the pure rules of :mod:`asched.core.claims`: read the record, apply,
and write it back only if no one wrote it meanwhile (retried on a clash).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any

import orjson

from asched.core.breaker import BreakerSettings, BreakerState, BreakerTransition
from asched.core.claims import BreakerRecord, ClaimNeed, Hold, breaker_outcome
from asched.errors import StoreError
from asched.stores.base import StartClaim, Store
from asched.stores.leases import Lease
from asched.stores.redis.calls import ScriptRunner

#: Tries of a breaker write that finds the record changed under it.
_SWAP_TRIES = 50


class RedisRules(Store):
    """The rule steps of :class:`asched.stores.redis.store.RedisStore`."""

    @abstractmethod
    def _require(self) -> ScriptRunner: ...

    @abstractmethod
    def _lease_args(self, owner: str, now_s: float, expires_s: float) -> list[Any]: ...

    async def _claim_start_limited(
        self,
        task_ids: list[str],
        owner: str,
        now_s: float,
        expires_s: float,
        needs: Mapping[str, ClaimNeed],
    ) -> StartClaim:
        args = [*self._lease_args(owner, now_s, expires_s), len(task_ids)]
        for task_id in task_ids:
            args += _need_args(task_id, needs.get(task_id))
        reply = await self._require().write("claim_start_limited", args)
        expiry = float(reply[0])
        claim = StartClaim()
        for task_id, token in reply[1]:
            claim.granted.append(Lease(task_id.decode(), owner, int(token), expiry))
        for task_id, token, kind, name, reason, wake in reply[2]:
            lease = Lease(task_id.decode(), owner, int(token), expiry)
            at = float(wake) if wake else None
            claim.held.append((lease, Hold(kind.decode(), name.decode(), reason.decode(), at)))
        for task_id, name, generation in reply[3]:
            claim.admitted[task_id.decode()] = (name.decode(), int(generation))
        for name, before, after, at, reason in reply[4]:
            claim.transitions.append(
                BreakerTransition(
                    name.decode(),
                    BreakerState(before.decode()),
                    BreakerState(after.decode()),
                    float(at),
                    reason.decode(),
                )
            )
        for name, fields in reply[5]:
            record, _ = _record(name.decode(), fields)
            claim.breakers[record.name] = record
        return claim

    async def _slots_held(self, names: list[str], now_s: float) -> dict[str, int]:
        reply = await self._require().run("slots_held", [repr(float(now_s)), *names])
        return {reply[i].decode(): int(reply[i + 1]) for i in range(0, len(reply), 2)}

    async def _report_breaker(
        self,
        name: str,
        settings: BreakerSettings,
        generation: int,
        outcome: str,
        now_s: float,
    ) -> tuple[BreakerRecord, list[BreakerTransition]]:
        runner = self._require()
        for _ in range(_SWAP_TRIES):
            found = await runner.run("breaker_read", [name])
            record, version = _record(name, found[0][1]) if found else (BreakerRecord(name), "0")
            changes = breaker_outcome(record, settings, generation, outcome, now_s)
            swapped = await runner.write("breaker_swap", [name, version, *_fields(record)])
            if int(swapped):
                return record, changes
        raise StoreError(f"redis store: breaker {name!r} kept changing; outcome not recorded")

    async def breaker_records(self) -> list[BreakerRecord]:
        found = await self._require().run("breaker_read", [])
        records = [_record(name.decode(), fields)[0] for name, fields in found]
        return sorted(records, key=lambda r: r.name)


def _need_args(task_id: str, need: ClaimNeed | None) -> list[Any]:
    if not need:
        return [task_id, 0, "", 0, 0, "", 0]
    args: list[Any] = [task_id, len(need.slots)]
    for name, limit in need.slots:
        args += [name, limit]
    rate = need.rate
    args += (
        ["", 0, 0] if rate is None else [rate.key, repr(rate.interval_s), repr(rate.tolerance_s)]
    )
    breaker = need.breaker
    args += ["", 0] if breaker is None else [breaker.name, breaker.settings.half_open_max_calls]
    return args


def _record(name: str, flat: list[bytes]) -> tuple[BreakerRecord, str]:
    """A breaker record from its hash fields, and its write count."""
    fields = {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}
    record = BreakerRecord(
        name,
        fields.get("state", "closed"),
        int(fields.get("generation", 0)),
        float(fields.get("open_until_s", 0.0)),
        int(fields.get("failures", 0)),
        int(fields.get("trials", 0)),
        int(fields.get("successes", 0)),
        float(fields.get("changed_s", 0.0)),
        fields.get("reason", ""),
        [list(b) for b in orjson.loads(fields.get("window", "[]"))],
    )
    return record, fields.get("v", "0")


def _fields(record: BreakerRecord) -> list[Any]:
    return [
        "state",
        record.state,
        "generation",
        record.generation,
        "open_until_s",
        repr(float(record.open_until_s)),
        "failures",
        record.failures,
        "trials",
        record.trials,
        "successes",
        record.successes,
        "changed_s",
        repr(float(record.changed_s)),
        "reason",
        record.reason,
        "window",
        orjson.dumps(record.window).decode(),
    ]
