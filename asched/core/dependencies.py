"""Dependency bookkeeping: which held tasks wait on which others.

Pure: the engine tells it when a task finishes and learns which dependents are
now free to run and which must be cancelled because a dependency failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


class DependencyGraph:
    __slots__ = ("_dependents", "_waiting_on")

    def __init__(self) -> None:
        self._waiting_on: dict[str, set[str]] = {}
        self._dependents: dict[str, list[str]] = {}

    @property
    def has_dependents(self) -> bool:
        return bool(self._dependents)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._waiting_on

    def hold(self, task_id: str, unmet: Iterable[str]) -> None:
        """Record that ``task_id`` waits for every id in ``unmet``."""
        pending = set(unmet)
        self._waiting_on[task_id] = pending
        for dep in pending:
            self._dependents.setdefault(dep, []).append(task_id)

    def awaited(self) -> list[tuple[str, list[str]]]:
        """Each task some held task waits on, with the tasks waiting on it."""
        return list(self._dependents.items())

    def waiting_on(self, task_id: str) -> frozenset[str]:
        return frozenset(self._waiting_on.get(task_id, ()))

    def forget(self, task_id: str) -> None:
        """Drop a held task (it was cancelled)."""
        for dep in self._waiting_on.pop(task_id, ()):
            dependents = self._dependents.get(dep)
            if dependents is not None:
                dependents.remove(task_id)
                if not dependents:
                    del self._dependents[dep]

    def completed(self, task_id: str) -> list[str]:
        """``task_id`` completed: return the dependents that wait on nothing more."""
        freed: list[str] = []
        for dependent in self._dependents.pop(task_id, ()):
            pending = self._waiting_on.get(dependent)
            if pending is None:
                continue
            pending.discard(task_id)
            if not pending:
                del self._waiting_on[dependent]
                freed.append(dependent)
        return freed

    def failed(self, task_id: str) -> list[str]:
        """``task_id`` failed or was cancelled: return its held dependents, forgotten."""
        doomed = list(self._dependents.pop(task_id, ()))
        for dependent in doomed:
            self.forget(dependent)
        return doomed


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle in ``task → dependencies`` edges as a path of ids, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in edges:
        if state.get(root):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, index = stack.pop()
            if index == 0:
                state[node] = 1
                path.append(node)
            children = edges.get(node, ())
            if index < len(children):
                stack.append((node, index + 1))
                child = children[index]
                mark = state.get(child)
                if mark == 1:
                    return [*path[path.index(child) :], child]
                if mark is None:
                    stack.append((child, 0))
            else:
                state[node] = 2
                path.pop()
    return None
