from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from asched.core.limits import Blocker, ConcurrencyLimits


@dataclass(frozen=True)
class Job:
    id: str
    type: str = "t"
    key: str | None = None
    priority: int = 2
    due_s: float = 0.0


def make(total: int = 10, key_limit: int = 1) -> ConcurrencyLimits[str, Job]:
    return ConcurrencyLimits(total, key_limit)


def park(limits: ConcurrencyLimits[str, Job], blocker: Blocker, job: Job) -> None:
    limits.park(blocker, job.id, job.priority, job.due_s, job)


def test_counts_running_and_room() -> None:
    limits = make(total=2)
    assert limits.has_room
    limits.acquire("t", None)
    limits.acquire("t", "k")
    assert limits.running == 2
    assert not limits.has_room
    assert limits.running_for_key("k") == 1
    assert limits.release("t", "k") == []
    assert limits.release("t", None) == []
    assert limits.running == 0
    assert limits.has_room
    assert limits.running_for_key("k") == 0


def test_no_limits_means_no_blocker() -> None:
    limits = make()
    for _ in range(5):
        assert limits.blocker("t", None) is None
        limits.acquire("t", None)


def test_key_limit_default_and_override() -> None:
    limits = make(key_limit=1)
    limits.key_limits["wide"] = 3
    limits.acquire("t", "narrow")
    assert limits.blocker("t", "narrow") == ("key", "narrow")
    assert limits.blocker("t", "other") is None
    for _ in range(2):
        assert limits.blocker("t", "wide") is None
        limits.acquire("t", "wide")
    assert limits.blocker("t", "wide") is None
    limits.acquire("t", "wide")
    assert limits.blocker("t", "wide") == ("key", "wide")
    limits.release("t", "wide")
    assert limits.blocker("t", "wide") is None
    assert limits.running_for_key("wide") == 2


def test_type_limits() -> None:
    limits = make(key_limit=5)
    limits.type_limits["email"] = 2
    limits.acquire("email", None)
    limits.acquire("other", None)
    assert limits.running_for_type("email") == 1
    assert limits.blocker("email", None) is None
    limits.acquire("email", "k")
    assert limits.running_for_type("email") == 2
    assert limits.blocker("email", None) == ("type", "email")
    assert limits.blocker("email", "free-key") == ("type", "email")
    assert limits.blocker("other", None) is None
    limits.release("email", None)
    assert limits.blocker("email", None) is None


def test_type_is_checked_before_key() -> None:
    limits = make(key_limit=1)
    limits.type_limits["t"] = 1
    limits.acquire("t", "k")
    assert limits.blocker("t", "k") == ("type", "t")
    assert limits.blocker("u", "k") == ("key", "k")


def test_parked_items_come_back_best_first_one_per_freed_slot() -> None:
    limits = make(key_limit=1)
    limits.acquire("t", "k")
    jobs = [
        Job("late", key="k", priority=2, due_s=5.0),
        Job("low", key="k", priority=4, due_s=0.0),
        Job("early", key="k", priority=2, due_s=1.0),
        Job("urgent", key="k", priority=0, due_s=9.0),
        Job("early-2", key="k", priority=2, due_s=1.0),
    ]
    for job in jobs:
        assert limits.blocker(job.type, job.key) == ("key", "k")
        park(limits, ("key", "k"), job)
    assert limits.parked_count() == 5
    woken: list[str] = []
    for _ in jobs:
        (job,) = limits.release("t", "k")
        woken.append(job.id)
        limits.acquire(job.type, job.key)
    assert woken == ["urgent", "early", "early-2", "late", "low"]
    assert limits.parked_count() == 0
    assert limits.release("t", "k") == []


def test_a_full_key_does_not_hold_up_other_keys() -> None:
    limits = make(key_limit=1)
    limits.acquire("t", "a")
    limits.acquire("t", "b")
    park(limits, ("key", "a"), Job("wait-a", key="a", priority=0))
    park(limits, ("key", "b"), Job("wait-b", key="b", priority=4))
    assert [j.id for j in limits.release("t", "b")] == ["wait-b"]
    assert limits.parked_count() == 1
    assert [j.id for j in limits.release("t", "a")] == ["wait-a"]


def test_release_wakes_one_from_the_type_and_one_from_the_key() -> None:
    limits = make(key_limit=1)
    limits.type_limits["t"] = 1
    limits.acquire("t", "k")
    park(limits, ("type", "t"), Job("by-type", key="other"))
    park(limits, ("key", "k"), Job("by-key", type="u", key="k"))
    park(limits, ("key", "k"), Job("by-key-2", type="u", key="k"))
    assert [j.id for j in limits.release("t", "k")] == ["by-type", "by-key"]
    assert limits.parked_count() == 1


def test_unpark_takes_a_specific_item_out() -> None:
    limits = make(key_limit=1)
    limits.acquire("t", "k")
    park(limits, ("key", "k"), Job("a", key="k", priority=0))
    park(limits, ("key", "k"), Job("b", key="k", priority=1))
    assert limits.unpark("a") == Job("a", key="k", priority=0)
    assert limits.unpark("a") is None
    assert limits.unpark("never") is None
    assert limits.parked_count() == 1
    assert [j.id for j in limits.release("t", "k")] == ["b"]
    limits.acquire("t", "k")
    assert limits.release("t", "k") == []


def test_unparking_the_last_item_leaves_nothing_to_wake() -> None:
    limits = make(key_limit=1)
    limits.acquire("t", "k")
    park(limits, ("key", "k"), Job("a", key="k"))
    assert limits.unpark("a") is not None
    assert limits.parked_count() == 0
    assert limits.release("t", "k") == []


def test_parking_a_key_again_replaces_it() -> None:
    limits = make(key_limit=1)
    limits.acquire("t", "k")
    park(limits, ("key", "k"), Job("a", key="k", priority=3))
    park(limits, ("key", "k"), Job("b", key="k", priority=2))
    park(limits, ("key", "k"), Job("a", key="k", priority=1))
    assert limits.parked_count() == 2
    assert [j.priority for j in limits.release("t", "k")] == [1]


# -- a simulated engine -------------------------------------------------------------

job_lists = st.lists(
    st.builds(
        Job,
        id=st.just(""),
        type=st.sampled_from(["t", "u", "v"]),
        key=st.sampled_from([None, "a", "b"]),
        priority=st.integers(0, 4),
        due_s=st.sampled_from([0.0, 1.0, 2.0]),
    ),
    max_size=25,
)


@settings(max_examples=75)
@given(jobs=job_lists, data=st.data(), type_limit=st.integers(1, 3), key_limit=st.integers(1, 2))
def test_every_job_runs_and_no_limit_is_exceeded(
    jobs: list[Job], data: st.DataObject, type_limit: int, key_limit: int
) -> None:
    jobs = [Job(f"j{i}", j.type, j.key, j.priority, j.due_s) for i, j in enumerate(jobs)]
    limits = make(total=1000, key_limit=key_limit)
    limits.key_limits["b"] = key_limit + 1
    limits.type_limits["t"] = type_limit
    running: list[Job] = []
    parked: dict[Blocker, list[tuple[int, float, int, Job]]] = {}  # in queue order
    started: list[str] = []
    seq = iter(range(10**6))

    def try_start(job: Job) -> None:
        blocker = limits.blocker(job.type, job.key)
        if blocker is None:
            limits.acquire(job.type, job.key, job.id)
            running.append(job)
            started.append(job.id)
            return
        parked.setdefault(blocker, []).append((job.priority, job.due_s, next(seq), job))
        # A job woken for a slot it cannot use hands that slot to the next in line.
        for again in limits.park(blocker, job.id, job.priority, job.due_s, job):
            for waiting in parked.values():
                for entry in waiting:
                    if entry[3] is again:
                        waiting.remove(entry)
                        break
            try_start(again)

    def check() -> None:
        assert limits.running == len(running)
        assert limits.parked_count() == sum(map(len, parked.values()))
        for key, limit in (("a", key_limit), ("b", key_limit + 1)):
            count = sum(j.key == key for j in running)
            assert count <= limit
            assert limits.running_for_key(key) == count
        assert sum(j.type == "t" for j in running) <= type_limit

    for job in jobs:
        try_start(job)
        check()
    while running:
        job = running.pop(data.draw(st.integers(0, len(running) - 1)))
        woken = limits.release(job.type, job.key)
        expected = []
        blockers: list[Blocker] = [("type", job.type)]
        if job.key is not None:
            blockers.append(("key", job.key))
        for blocker in blockers:
            waiting = parked.get(blocker)
            if waiting:
                best = min(waiting)
                waiting.remove(best)
                expected.append(best[3])
        assert woken == expected
        for item in woken:
            try_start(item)
        check()
    assert sorted(started) == sorted(j.id for j in jobs)
    assert limits.parked_count() == 0


def test_a_woken_item_parked_again_hands_its_slot_to_the_next_in_line() -> None:
    limits: ConcurrencyLimits[str, str] = ConcurrencyLimits(100, 1)
    limits.type_limits["upload"] = 1
    limits.acquire("render", "c1")  # another type holds channel c1
    limits.acquire("upload", "c9")  # the one upload slot is taken
    assert limits.park(("type", "upload"), "a", 2, 1.0, "a") == []
    assert limits.park(("type", "upload"), "b", 2, 2.0, "b") == []
    assert limits.release("upload", "c9") == ["a"]  # a wakes for the upload slot...
    assert limits.blocker("upload", "c1") == ("key", "c1")
    # ...but its channel is busy: parking it again passes the upload slot on to b.
    assert limits.park(("key", "c1"), "a", 2, 1.0, "a") == ["b"]
    assert limits.blocker("upload", "c2") is None
    limits.acquire("upload", "c2", "b")
    assert limits.forget("b") == []  # b started: nothing more to hand on


def test_a_woken_item_cancelled_before_it_starts_hands_its_slot_on() -> None:
    limits: ConcurrencyLimits[str, str] = ConcurrencyLimits(100, 1)
    limits.type_limits["upload"] = 1
    limits.acquire("upload", None)
    limits.park(("type", "upload"), "a", 2, 1.0, "a")
    limits.park(("type", "upload"), "b", 2, 2.0, "b")
    assert limits.release("upload", None) == ["a"]
    assert limits.forget("a") == ["b"]
