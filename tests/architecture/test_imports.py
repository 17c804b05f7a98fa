"""The package's import graph: no cycles, and a pure core.

Imports under ``if TYPE_CHECKING:`` are left out: they never run, so they
cannot form a cycle at import time, and they let a module name a type it does
not otherwise need.  Imports inside functions count like any other.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import asched

PACKAGE = Path(asched.__file__).parent
CORE_ALLOWED = {"croniter", "asched.errors", "asched.core"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    base = ".".join(parts[:keep])
    return f"{base}.{node.module}" if node.module else base


def _graph() -> dict[str, set[str]]:
    paths = [path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts]
    modules = {_module_name(path): path for path in paths}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported = _runtime_imports(ast.parse(path.read_text()), name, path.name == "__init__.py")
        # "from asched.model import Task" names asched.model.Task: keep what is a module.
        graph[name] = {i for i in imported if i in modules and i != name}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    # A package's __init__ importing its own submodules is how packages re-export;
    # a submodule importing its parent package back is the cycle that matters.
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)):
            return cycle
    return None


def _without_package_reexports(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop edges from a package's ``__init__`` to the modules inside it."""
    packages = {n for n in graph if (PACKAGE.parent / n.replace(".", "/") / "__init__.py").exists()}
    return {
        name: {i for i in deps if not (name in packages and i.startswith(name + "."))}
        for name, deps in graph.items()
    }


def test_no_import_cycles() -> None:
    cycle = _find_cycle(_without_package_reexports(_graph()))
    assert cycle is None, " -> ".join(cycle or [])


def test_the_core_imports_only_the_stdlib_croniter_and_errors() -> None:
    stdlib = set(sys.stdlib_module_names)
    offenders = []
    for path in (PACKAGE / "core").rglob("*.py"):
        name = _module_name(path)
        for imported in _runtime_imports(ast.parse(path.read_text()), name, False):
            top = imported.split(".")[0]
            if top in stdlib or top == "__future__":
                continue
            if any(imported == a or imported.startswith(a + ".") for a in CORE_ALLOWED):
                continue
            offenders.append(f"{name} imports {imported}")
    assert offenders == []


CLOCK_READS = {("time", "time"), ("time", "monotonic"), ("time", "perf_counter")}


def test_only_the_clock_module_reads_the_clock() -> None:
    """Everything else asks a Clock (or asched.clock's helpers), so tests can fake time."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "clock.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            target = node.func if isinstance(node, ast.Call) else None
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                pair = (target.value.id, target.attr)
                if pair in CLOCK_READS or pair in {("datetime", "now"), ("datetime", "utcnow")}:
                    offenders.append(f"{_module_name(path)}:{node.lineno} {'.'.join(pair)}()")
    assert offenders == []
