from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

from asched.core.queue import TaskQueue


class Item:
    """An item with no ordering, like a Task: the queue must never compare items."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Item({self.name!r})"


def drain(queue: TaskQueue[Any, Any]) -> list[Any]:
    out = []
    while (item := queue.pop()) is not None:
        out.append(item)
    return out


def test_empty_queue() -> None:
    queue: TaskQueue[str, str] = TaskQueue()
    assert len(queue) == 0
    assert not queue
    assert queue.pop() is None
    assert queue.popitem() is None
    assert queue.peek() is None
    assert queue.peek_key() is None
    assert queue.remove("x") is None
    assert queue.reprioritize("x", 1) is False
    assert queue.items() == []


def test_orders_by_priority_then_due_then_insertion() -> None:
    queue: TaskQueue[str, str] = TaskQueue()
    queue.push("late-high", 1, 20.0, "late-high")
    queue.push("low", 3, 0.0, "low")
    queue.push("early-high", 1, 10.0, "early-high")
    queue.push("critical", 0, 99.0, "critical")
    queue.push("early-high-2", 1, 10.0, "early-high-2")
    assert queue.peek() == "critical"
    assert queue.peek_key() == (0, 99.0)
    assert queue.items() == ["critical", "early-high", "early-high-2", "late-high", "low"]
    assert drain(queue) == ["critical", "early-high", "early-high-2", "late-high", "low"]


def test_ties_are_fifo() -> None:
    queue: TaskQueue[int, int] = TaskQueue()
    for key in range(50):
        queue.push(key, 2, 5.0, key)
    assert drain(queue) == list(range(50))


def test_push_of_a_queued_key_replaces_and_requeues_it() -> None:
    queue: TaskQueue[str, str] = TaskQueue()
    queue.push("a", 2, 1.0, "a-old")
    queue.push("b", 2, 1.0, "b")
    queue.push("a", 2, 1.0, "a-new")
    assert len(queue) == 2
    assert "a" in queue
    assert drain(queue) == ["b", "a-new"]


def test_popitem_returns_key_and_item() -> None:
    queue: TaskQueue[str, str] = TaskQueue()
    queue.push("k", 1, 0.0, "v")
    assert queue.popitem() == ("k", "v")
    assert "k" not in queue
    assert len(queue) == 0


def test_remove_returns_the_item_and_skips_it() -> None:
    queue: TaskQueue[str, str] = TaskQueue()
    for key in "abc":
        queue.push(key, 1, 0.0, key.upper())
    assert queue.remove("a") == "A"
    assert queue.remove("a") is None
    assert queue.peek() == "B"
    assert queue.peek_key() == (1, 0.0)
    assert drain(queue) == ["B", "C"]


def test_reprioritize_keeps_due_and_fifo_place() -> None:
    queue: TaskQueue[str, str] = TaskQueue()
    queue.push("a", 2, 1.0, "a")
    queue.push("b", 3, 1.0, "b")
    queue.push("c", 2, 1.0, "c")
    assert queue.reprioritize("b", 2) is True
    # b was pushed before c, so it keeps that place among equal keys.
    assert drain(queue) == ["a", "b", "c"]


def test_reprioritize_away_and_back_never_compares_items() -> None:
    queue: TaskQueue[str, Item] = TaskQueue()
    queue.push("a", 2, 1.0, Item("a"))
    queue.push("b", 2, 1.0, Item("b"))
    for priority in (1, 2, 1, 2, 0, 2):
        assert queue.reprioritize("a", priority)
    queue.push("c", 2, 1.0, Item("c"))
    assert [item.name for item in queue.items()] == ["a", "b", "c"]
    assert [item.name for item in drain(queue)] == ["a", "b", "c"]


def test_many_removals_compact_without_losing_items() -> None:
    queue: TaskQueue[int, int] = TaskQueue()
    for key in range(500):
        queue.push(key, key % 5, float(key), key)
    for key in range(500):
        if key % 7:
            assert queue.remove(key) == key
    expected = sorted((k for k in range(500) if k % 7 == 0), key=lambda k: (k % 5, k))
    assert len(queue) == len(expected)
    assert queue.items() == expected
    assert drain(queue) == expected


# -- state machine against a sorted-list model -------------------------------------

priorities = st.integers(0, 4)
dues = st.sampled_from([0.0, 0.5, 1.0, 2.0]) | st.floats(-10.0, 10.0)


class QueueMachine(RuleBasedStateMachine):
    """TaskQueue against a dict of key -> (priority, due, seq, item)."""

    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.queue: TaskQueue[int, Item] = TaskQueue()
        self.model: dict[int, tuple[int, float, int, Item]] = {}
        self.seq = 0
        self.next_key = 0

    def expected_order(self) -> list[int]:
        return sorted(self.model, key=lambda k: self.model[k][:3])

    def _push(self, key: int, priority: int, due: float) -> None:
        item = Item(f"{key}#{self.seq}")
        self.queue.push(key, priority, due, item)
        self.model[key] = (priority, due, self.seq, item)
        self.seq += 1

    @rule(target=keys, priority=priorities, due=dues)
    def push_new(self, priority: int, due: float) -> int:
        key = self.next_key
        self.next_key += 1
        self._push(key, priority, due)
        return key

    @rule(key=keys, priority=priorities, due=dues)
    def push_again(self, key: int, priority: int, due: float) -> None:
        self._push(key, priority, due)

    @rule()
    def pop(self) -> None:
        popped = self.queue.popitem()
        if not self.model:
            assert popped is None
            return
        best = self.expected_order()[0]
        assert popped == (best, self.model.pop(best)[3])

    @rule(key=keys)
    def remove(self, key: int) -> None:
        expected = self.model.pop(key, None)
        assert self.queue.remove(key) is (None if expected is None else expected[3])

    @rule(key=keys, priority=priorities)
    def reprioritize(self, key: int, priority: int) -> None:
        entry = self.model.get(key)
        assert self.queue.reprioritize(key, priority) is (entry is not None)
        if entry is not None:
            self.model[key] = (priority, *entry[1:])

    @rule()
    def peek(self) -> None:
        if not self.model:
            assert self.queue.peek() is None
            assert self.queue.peek_key() is None
            return
        best = self.model[self.expected_order()[0]]
        assert self.queue.peek() is best[3]
        assert self.queue.peek_key() == (best[0], best[1])

    @precondition(lambda self: len(self.model) > 0)
    @rule(data=st.data())
    def pop_several(self, data: st.DataObject) -> None:
        count = data.draw(st.integers(1, len(self.model)))
        for _ in range(count):
            self.pop()

    @rule(key=consumes(keys))
    def forget_key(self, key: int) -> None:
        # Keeps the bundle small; the queue is not touched.
        pass

    @invariant()
    def sizes_match(self) -> None:
        assert len(self.queue) == len(self.model)
        assert bool(self.queue) == bool(self.model)
        for key in self.model:
            assert key in self.queue

    @invariant()
    def items_in_pop_order(self) -> None:
        assert self.queue.items() == [self.model[k][3] for k in self.expected_order()]


QueueMachine.TestCase.settings = settings(max_examples=75, stateful_step_count=40, deadline=None)
TestQueueMachine = QueueMachine.TestCase
