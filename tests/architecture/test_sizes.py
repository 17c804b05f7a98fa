"""Size limits: no module of the package over 400 lines, no function over 55.

Small modules with one job, and functions that fit on a screen.  A function
may go over only by name in ``ALLOWED``, with its own cap and the reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import asched

PACKAGE = Path(asched.__file__).parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 55

#: "<module path>:<qualified name>" -> the most lines that function may have.
ALLOWED: dict[str, int] = {
    # The hot path of schedule_task, kept whole on purpose: one frame per task,
    # the Task built positionally, no helper calls for the common case.
    "asched/engine/intake.py:TaskIntake.build": 60,
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def _functions(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(qualified name, lines) of every function, nested ones included."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{child.name}"
            assert child.end_lineno is not None
            yield name, child.end_lineno - child.lineno + 1
            yield from _functions(child, f"{name}.")
        else:
            yield from _functions(child, prefix)


def _all_functions() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name, lines in _functions(tree):
            found[f"{_relative(path)}:{name}"] = lines
    return found


def test_no_module_is_over_the_limit() -> None:
    offenders = [
        f"{_relative(path)}: {lines} lines"
        for path in _modules()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not offenders, (
        f"modules over {MAX_MODULE_LINES} lines (split them by responsibility):\n"
        + "\n".join(offenders)
    )


def test_no_function_is_over_the_limit() -> None:
    offenders = [
        f"{name}: {lines} lines"
        for name, lines in _all_functions().items()
        if lines > ALLOWED.get(name, MAX_FUNCTION_LINES)
    ]
    assert not offenders, (
        f"functions over {MAX_FUNCTION_LINES} lines (or over their cap in ALLOWED):\n"
        + "\n".join(offenders)
    )


def test_every_allowance_names_a_function() -> None:
    stale = sorted(set(ALLOWED) - set(_all_functions()))
    assert not stale, f"ALLOWED names functions that no longer exist: {stale}"


def test_the_walk_sees_methods_and_nested_functions() -> None:
    tree = ast.parse(
        "class A:\n    def f(self):\n        def g():\n            pass\n\n"
        "async def h():\n    pass\n"
    )
    assert dict(_functions(tree)) == {"A.f": 3, "A.f.g": 2, "h": 2}
