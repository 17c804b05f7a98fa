"""SQLiteStore's steps for the cluster-wide start rules (the statements are in
:mod:`asched.stores.sqlite.slots`): each write is a lease op of the next group
transaction, so a start-claim and what it takes commit together."""

from __future__ import annotations

import asyncio
import sqlite3
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import orjson

from asched.core.breaker import BreakerSettings, BreakerTransition
from asched.core.claims import BreakerRecord, ClaimNeed
from asched.stores.base import StartClaim, Store
from asched.stores.sqlite.group import LeaseOp
from asched.stores.sqlite.slots import (
    ALL_BREAKERS_SQL,
    HELD_SQL,
    claim_start_limited_rows,
    report_breaker_row,
)

T = TypeVar("T")


def _same(value: T) -> T:
    return value


class SQLiteRules(Store):
    """The rule steps of :class:`asched.stores.sqlite.store.SQLiteStore`."""

    @abstractmethod
    def _queue_op(self, op: LeaseOp[Any, T]) -> asyncio.Future[T]: ...

    @abstractmethod
    async def _read(self, sql: str, params: Iterable[Any] | Mapping[str, Any]) -> list[Any]: ...

    def _op(self, work: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        op: LeaseOp[T, T] = LeaseOp(work, _same)
        return self._queue_op(op)

    async def _claim_start_limited(
        self,
        task_ids: list[str],
        owner: str,
        now_s: float,
        expires_s: float,
        needs: Mapping[str, ClaimNeed],
    ) -> StartClaim:
        chosen = dict(needs)
        return await self._op(
            lambda db: claim_start_limited_rows(db, task_ids, owner, now_s, expires_s, chosen)
        )

    async def _slots_held(self, names: list[str], now_s: float) -> dict[str, int]:
        params = {"names": _names(names), "now": now_s, "skip": "[]"}
        return {name: int(n) for name, n in await self._read(HELD_SQL, params)}

    async def _report_breaker(
        self,
        name: str,
        settings: BreakerSettings,
        generation: int,
        outcome: str,
        now_s: float,
    ) -> tuple[BreakerRecord, list[BreakerTransition]]:
        return await self._op(
            lambda db: report_breaker_row(db, name, settings, generation, outcome, now_s)
        )

    async def breaker_records(self) -> list[BreakerRecord]:
        rows = await self._read(ALL_BREAKERS_SQL, ())
        return [BreakerRecord.from_json(orjson.loads(row[0])) for row in rows]


def _names(names: list[str]) -> str:
    return orjson.dumps(names).decode()
