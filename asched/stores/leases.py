"""Leases: what one is, the checks of lease arguments, and the leases a store granted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from asched.core.breaker import BreakerTransition
from asched.core.checks import require_int, require_number, require_text
from asched.core.claims import BreakerRecord, Hold
from asched.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Lease:
    """One owner's hold on one task until ``expires_s``; ``token`` fences its writes.

    ``crashes`` is how many attempts of the task, as the store knows when it
    granted the lease, ended with their worker gone before an outcome was saved
    (0 from stores that do not count them)."""

    task_id: str
    owner: str
    token: int
    expires_s: float
    crashes: int = 0


def check_owner(owner: Any) -> str:
    return require_text("owner", owner, error=ConfigError)


def check_lease_s(lease_s: Any) -> float:
    return require_number("lease_s", lease_s, above=0, error=ConfigError)


def check_limit(limit: Any) -> int:
    return require_int("limit", limit, minimum=0, error=ConfigError)


@dataclass(slots=True)
class StartClaim:
    """What :meth:`Store.claim_start_limited` did: the attempts that may start, the
    tasks a rule holds (leased to the caller, not started: no other process adopts
    them, and no attempt is spent), and the breaker generation each start was
    admitted in (to report its outcome with)."""

    granted: list[Lease] = field(default_factory=list)
    held: list[tuple[Lease, Hold]] = field(default_factory=list)
    admitted: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: breaker state changes the claim made (an OPEN breaker turning HALF_OPEN)
    transitions: list[BreakerTransition] = field(default_factory=list)
    #: the breaker records the claim wrote, as written
    breakers: dict[str, BreakerRecord] = field(default_factory=dict)


class HeldLeases:
    """The leases this store granted, by owner and task, with their tokens.

    The store alone cannot tell that a lease was taken over (the row now names
    the new owner), so ``renew`` compares what it could extend with this.  Each
    grant is stamped, so a heartbeat judges only the leases granted before it
    started: one granted while it was in flight is not "lost" for being absent
    from what it extended.
    """

    __slots__ = ("_by_owner", "_stamp")

    def __init__(self) -> None:
        #: owner -> task id -> (token, stamp of the grant)
        self._by_owner: dict[str, dict[str, tuple[int, int]]] = {}
        self._stamp = 0

    def mark(self) -> int:
        """A stamp to hand to :meth:`renewed`: what is granted after it is not judged."""
        self._stamp += 1
        return self._stamp

    def task_ids(self, owner: str) -> set[str]:
        """The tasks this store granted ``owner`` and it still holds, as far as known."""
        return set(self._by_owner.get(owner, ()))

    def tokens(self, owner: str, task_ids: Iterable[str]) -> dict[str, int]:
        """The token of each of ``task_ids`` whose lease ``owner`` holds here."""
        held = self._by_owner.get(owner)
        if not held:
            return {}
        return {task_id: held[task_id][0] for task_id in task_ids if task_id in held}

    def grant(self, leases: Iterable[Lease]) -> None:
        stamp = self.mark()
        for lease in leases:
            self._by_owner.setdefault(lease.owner, {})[lease.task_id] = (lease.token, stamp)

    def drop(self, leases: Iterable[Lease]) -> None:
        """Forget leases that ended; a newer lease of the same owner on the task stays."""
        for lease in leases:
            held = self._by_owner.get(lease.owner)
            entry = held.get(lease.task_id) if held is not None else None
            if held is not None and entry is not None and entry[0] == lease.token:
                del held[lease.task_id]
                if not held:
                    del self._by_owner[lease.owner]

    def renewed(
        self,
        owner: str,
        extended: Iterable[tuple[str, int]],
        expired: Iterable[str],
        mark: int | None = None,
    ) -> list[str]:
        """After a heartbeat that started at ``mark``: ``owner`` now holds ``extended``
        plus whatever was granted since; return what it lost."""
        before = self._by_owner.pop(owner, {})
        stamp = self.mark()
        now = {task_id: (token, stamp) for task_id, token in extended}
        lost = set(expired)
        for task_id, (token, granted) in before.items():
            if task_id in now or task_id in lost:
                continue
            if mark is not None and granted > mark:
                now[task_id] = (token, granted)  # granted while the heartbeat was in flight
            else:
                lost.add(task_id)
        for task_id in expired:
            now.pop(task_id, None)
        if now:
            self._by_owner[owner] = now
        return sorted(lost)
