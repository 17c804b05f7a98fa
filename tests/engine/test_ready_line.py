"""The ready line's shortcut for tasks with no key and no type limit (it bumps the
running count itself) must leave the limits exactly as ``acquire``/``release`` do."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from asched.core.limits import ConcurrencyLimits
from asched.engine.policies import Policies
from asched.engine.ready import ReadyLine
from asched.model import Task
from asched.testing import FakeClock

KEYS = [None, "c1", "c2"]
TYPES = ["render", "upload"]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.sampled_from(TYPES), st.sampled_from(KEYS)),
        st.tuples(st.just("finish"), st.integers(0, 50), st.none()),
    ),
    max_size=60,
)


@given(steps, st.booleans(), st.integers(1, 6))
def test_the_shortcut_counts_like_acquire_and_release(
    script: list[tuple[str, object, object]], type_limited: bool, total: int
) -> None:
    limits: ConcurrencyLimits[str, Task] = ConcurrencyLimits(total, 2)
    reference: ConcurrencyLimits[str, Task] = ConcurrencyLimits(total, 2)
    if type_limited:
        limits.type_limits["upload"] = reference.type_limits["upload"] = 1
    line = ReadyLine(limits, Policies(), None, None, lambda task, at: None)
    line.bind(FakeClock())
    running: list[Task] = []

    def start(task: Task, now_s: float) -> None:
        reference.acquire(task.type, task.concurrency_key, task.id)
        running.append(task)

    for n, (action, arg, key) in enumerate(script):
        if action == "push":
            line.push(Task(f"t{n}", str(arg), concurrency_key=key), float(n))  # type: ignore[arg-type]
        elif running:
            task = running.pop(int(arg) % len(running))  # type: ignore[call-overload]
            line.release(task)
            reference.release(task.type, task.concurrency_key)
        line.drain(float(n), start)
        assert limits.running == reference.running == len(running)
        for key_name in ("c1", "c2"):
            assert limits.running_for_key(key_name) == reference.running_for_key(key_name)
        assert limits.running_for_type("upload") == reference.running_for_type("upload")
