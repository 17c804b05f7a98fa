"""Lease bookkeeping both stores share: argument checks and the leases a store granted."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from asched.errors import ConfigError
from asched.stores.base import Lease


def check_owner(owner: Any) -> str:
    if not isinstance(owner, str) or not owner:
        raise ConfigError("owner", owner, "expected a non-empty string")
    return owner


def check_lease_s(lease_s: Any) -> float:
    if isinstance(lease_s, bool) or not isinstance(lease_s, int | float):
        raise ConfigError("lease_s", lease_s, "expected a finite number > 0")
    if not (lease_s > 0 and math.isfinite(lease_s)):
        raise ConfigError("lease_s", lease_s, "expected a finite number > 0")
    return float(lease_s)


def check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ConfigError("limit", limit, "expected an integer >= 0")
    return limit


class HeldLeases:
    """The leases this store granted, by owner and task, with their tokens.

    The store alone cannot tell that a lease was taken over (the row now names
    the new owner), so ``renew`` compares what it could extend with this.
    """

    __slots__ = ("_by_owner",)

    def __init__(self) -> None:
        self._by_owner: dict[str, dict[str, int]] = {}

    def grant(self, leases: Iterable[Lease]) -> None:
        for lease in leases:
            self._by_owner.setdefault(lease.owner, {})[lease.task_id] = lease.token

    def drop(self, leases: Iterable[Lease]) -> None:
        """Forget leases that ended; a newer lease of the same owner on the task stays."""
        for lease in leases:
            held = self._by_owner.get(lease.owner)
            if held is not None and held.get(lease.task_id) == lease.token:
                del held[lease.task_id]
                if not held:
                    del self._by_owner[lease.owner]

    def renewed(
        self, owner: str, extended: Iterable[tuple[str, int]], expired: Iterable[str]
    ) -> list[str]:
        """After a heartbeat: ``owner`` now holds exactly ``extended``; return what it lost."""
        before = self._by_owner.pop(owner, {})
        now = dict(extended)
        if now:
            self._by_owner[owner] = now
        lost = {task_id for task_id in before if task_id not in now}
        lost.update(expired)
        return sorted(lost)
