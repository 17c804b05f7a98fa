"""Every Redis key the store uses, named in one place.

All keys of one application share the hash tag ``{prefix}``, so they live in
one slot and a Lua script may touch any of them (Redis Cluster included).  The
scripts build per-task and per-owner names from :attr:`RedisKeys.base` with
the same suffixes as below; ``LUA_PRELUDE`` in ``scripts`` repeats them.

Layout (``B`` is ``{prefix}``)::

    B:meta            HASH   layout version and the epoch marker (restart check)
    B:seq             STRING insertion sequence, for FIFO ties
    B:t:<id>          HASH   one task: r record JSON (its state: rewritten by every
                             save), h its HMAC, D task data JSON (written once; none
                             for {}), hd its HMAC, R result JSON (once, when it
                             completes), hr its HMAC, v 2 (written this way: a task
                             without it keeps its data inside r), s state, d due_s,
                             p priority, m index member, ty type, ik idempotency key,
                             o owner, k lease token (never reset), x lease expiry
    B:all             ZSET   every task, score due_s, member m
    B:s:<STATE>       ZSET   tasks in one lifecycle state, same score and member
    B:due:<0..4>      ZSET   per priority: claimable tasks no lease holds, score due_s
    B:leased          ZSET   leased task ids, score lease expiry
    B:o:<owner>       SET    task ids one owner leases
    B:x:<owner>       SET    task ids one owner's claim_due skips (sent as changes)
    B:idem            HASH   idempotency key -> task id
    B:fin:<type>      ZSET   finished tasks of one type, score when they finished
    B:fintypes        SET    the types with finished tasks indexed
    B:purge           ZSET   (older versions) finished tasks, score when to purge them
    B:sched           HASH   schedule id -> schedule record JSON
    B:changed         pub/sub channel: a writer's origin id after its writes (wakeups)

The index member ``m`` is ``<priority digit><12-digit sequence><task id>``:
within one score Redis orders members byte-wise, so ties fall in (priority,
insertion) order and the task id is ``m[13:]``.

Reserved for the cluster rules of the Store contract (limits, rates, breakers,
workers, cancel requests): ``B:slots:*``, ``B:rate:*``, ``B:breaker:*``,
``B:workers``, ``B:cancel``.
"""

from __future__ import annotations

from dataclasses import dataclass

from asched.model import TaskLifecycle, TaskPriority

#: Bumped when the layout changes incompatibly; stored in ``B:meta``.
LAYOUT_VERSION = 1
#: Length of the ``<priority><sequence>`` head of an index member.
MEMBER_HEAD = 13


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str

    @property
    def base(self) -> str:
        return "{" + self.prefix + "}"

    @property
    def meta(self) -> str:
        return f"{self.base}:meta"

    @property
    def all(self) -> str:
        return f"{self.base}:all"

    @property
    def idem(self) -> str:
        return f"{self.base}:idem"

    @property
    def schedules(self) -> str:
        return f"{self.base}:sched"

    @property
    def changed(self) -> str:
        return f"{self.base}:changed"

    @property
    def leased(self) -> str:
        return f"{self.base}:leased"

    def task(self, task_id: str) -> str:
        return f"{self.base}:t:{task_id}"

    def state(self, state: TaskLifecycle) -> str:
        return f"{self.base}:s:{state.name}"

    def due(self, priority: TaskPriority) -> str:
        return f"{self.base}:due:{priority.value}"


def member_task_id(member: bytes) -> str:
    return member[MEMBER_HEAD:].decode()
