"""Leases: what one is, the checks of lease arguments, and the leases a store granted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from asched.core.checks import require_int, require_number, require_text
from asched.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Lease:
    """One owner's hold on one task until ``expires_s``; ``token`` fences its writes."""

    task_id: str
    owner: str
    token: int
    expires_s: float


def check_owner(owner: Any) -> str:
    return require_text("owner", owner, error=ConfigError)


def check_lease_s(lease_s: Any) -> float:
    return require_number("lease_s", lease_s, above=0, error=ConfigError)


def check_limit(limit: Any) -> int:
    return require_int("limit", limit, minimum=0, error=ConfigError)


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
