from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asched.core.dependencies import DependencyGraph, find_cycle


def test_hold_records_what_a_task_waits_on() -> None:
    graph = DependencyGraph()
    graph.hold("c", ["a", "b", "a"])
    assert "c" in graph
    assert "a" not in graph
    assert graph.waiting_on("c") == frozenset({"a", "b"})
    assert graph.waiting_on("zzz") == frozenset()


def test_completed_frees_a_dependent_only_after_its_last_dependency() -> None:
    graph = DependencyGraph()
    graph.hold("c", ["a", "b"])
    graph.hold("d", ["a"])
    assert graph.completed("a") == ["d"]  # c still waits on b
    assert graph.waiting_on("c") == frozenset({"b"})
    assert "d" not in graph
    assert graph.completed("a") == []
    assert graph.completed("b") == ["c"]
    assert "c" not in graph
    assert graph.completed("unknown") == []


def test_completed_returns_dependents_in_hold_order() -> None:
    graph = DependencyGraph()
    for name in ["x3", "x1", "x2"]:
        graph.hold(name, ["root"])
    assert graph.completed("root") == ["x3", "x1", "x2"]


def test_failed_returns_held_dependents_and_forgets_them() -> None:
    graph = DependencyGraph()
    graph.hold("c", ["a", "b"])
    graph.hold("d", ["a"])
    graph.hold("e", ["b"])
    assert sorted(graph.failed("a")) == ["c", "d"]
    assert "c" not in graph and "d" not in graph
    # c no longer waits on b, so b completing frees only e.
    assert graph.completed("b") == ["e"]
    assert graph.failed("a") == []


def test_forget_drops_a_held_task_everywhere() -> None:
    graph = DependencyGraph()
    graph.hold("c", ["a", "b"])
    graph.hold("d", ["a"])
    graph.forget("c")
    graph.forget("c")  # idempotent
    graph.forget("never-held")
    assert "c" not in graph
    assert graph.failed("b") == []
    assert graph.completed("a") == ["d"]


def test_a_dependency_that_fails_after_a_partial_completion() -> None:
    graph = DependencyGraph()
    graph.hold("c", ["a", "b"])
    assert graph.completed("a") == []
    assert graph.failed("b") == ["c"]
    assert "c" not in graph


@given(
    holds=st.dictionaries(
        st.sampled_from([f"t{i}" for i in range(8)]),
        st.sets(st.sampled_from([f"d{i}" for i in range(6)]), min_size=1),
        max_size=8,
    ),
    order=st.permutations([f"d{i}" for i in range(6)]),
)
def test_each_held_task_is_freed_exactly_when_its_last_dependency_completes(
    holds: dict[str, set[str]], order: list[str]
) -> None:
    graph = DependencyGraph()
    for task, deps in holds.items():
        graph.hold(task, deps)
    done: set[str] = set()
    freed: list[str] = []
    for dep in order:
        done.add(dep)
        now_free = graph.completed(dep)
        assert sorted(now_free) == sorted(
            t for t, deps in holds.items() if dep in deps and deps <= done
        )
        freed += now_free
        for task, deps in holds.items():
            assert (task in graph) == (not deps <= done)
            if task in graph:
                assert graph.waiting_on(task) == deps - done
    assert sorted(freed) == sorted(holds)


# -- find_cycle --------------------------------------------------------------------


def assert_is_cycle(edges: Mapping[str, Sequence[str]], path: list[str] | None) -> None:
    assert path is not None
    assert len(path) >= 2
    assert path[0] == path[-1]
    for node, dependency in pairwise(path):
        assert dependency in edges.get(node, ())


@pytest.mark.parametrize(
    "edges",
    [
        {"a": ["a"]},
        {"a": ["b"], "b": ["a"]},
        {"a": ["b"], "b": ["c"], "c": ["d"], "d": ["e"], "e": ["b"]},
        {"x": [], "a": ["x", "b"], "b": ["x", "c"], "c": ["a"]},
        {"root": ["ok", "loop"], "ok": [], "loop": ["loop2"], "loop2": ["loop"]},
    ],
    ids=["self-loop", "2-cycle", "long-cycle", "cycle-beside-shared-leaf", "cycle-off-root"],
)
def test_find_cycle_reports_a_real_cycle(edges: dict[str, list[str]]) -> None:
    assert_is_cycle(edges, find_cycle(edges))


def test_self_loop_path() -> None:
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


@pytest.mark.parametrize(
    "edges",
    [
        {},
        {"a": []},
        {"a": ["b"], "b": ["c"]},  # c is only referenced
        {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []},  # diamond
        {"a": ["b", "b"], "b": []},
    ],
)
def test_find_cycle_returns_none_for_a_dag(edges: dict[str, list[str]]) -> None:
    assert find_cycle(edges) is None


def test_long_chain_does_not_recurse() -> None:
    n = 20_000
    chain = {f"n{i}": [f"n{i + 1}"] for i in range(n)}
    assert find_cycle(chain) is None
    chain[f"n{n}"] = ["n0"]
    path = find_cycle(chain)
    assert_is_cycle(chain, path)
    assert path is not None and len(path) == n + 2


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """Edges only go from a node to nodes later in a random order."""
    n = draw(st.integers(1, 12))
    names = draw(st.permutations([f"n{i}" for i in range(n)]))
    edges: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        later = names[i + 1 :]
        if later:
            edges[name] = draw(st.lists(st.sampled_from(later), max_size=4))
        elif draw(st.booleans()):
            edges[name] = []
    return edges


def reachable_from(edges: Mapping[str, Sequence[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        for child in edges.get(node, ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


@settings(max_examples=50)
@given(dags())
def test_a_random_dag_never_reports_a_cycle(edges: dict[str, list[str]]) -> None:
    assert find_cycle(edges) is None


@settings(max_examples=50)
@given(dags(), st.data())
def test_adding_a_back_edge_always_reports_a_cycle(
    edges: dict[str, list[str]], data: st.DataObject
) -> None:
    pairs = sorted((a, b) for a in edges for b in reachable_from(edges, a))
    if not pairs:
        # No path to close: a self-loop is the only back edge.
        node = data.draw(st.sampled_from(sorted(edges) or ["solo"]))
        pairs = [(node, node)]
    ancestor, descendant = data.draw(st.sampled_from(pairs))
    cyclic = {k: list(v) for k, v in edges.items()}
    cyclic.setdefault(descendant, []).append(ancestor)
    assert_is_cycle(cyclic, find_cycle(cyclic))
