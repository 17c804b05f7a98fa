"""Finding the app ``asched run module:attribute`` names, and the store it runs on."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from asched.errors import AschedError
from asched.scheduler import Scheduler
from asched.stores import Store
from asched.stores.memory import MemoryStore

#: Where ``asched run`` keeps tasks when neither ``--store`` nor the app names a
#: durable store.
DEFAULT_WORKER_STORE = "sqlite:///asched.db"

OnStart = Callable[[Scheduler], Coroutine[Any, Any, Any]]


class AppError(AschedError):
    """The APP argument does not name a usable Scheduler."""


@dataclass(frozen=True, slots=True)
class App:
    spec: str
    scheduler: Scheduler
    on_start: OnStart | None


def load_app(spec: str) -> App:
    """Import ``module:attribute`` (the current directory first on the path) and
    check that it is a Scheduler; pick up the module's optional ``on_start``."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise AppError(
            f"APP must be module:attribute (for example myapp.worker:scheduler), not {spec!r}"
        )
    module = _import(module_name)
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise AppError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(target, Scheduler):
        kind = type(target).__name__
        raise AppError(f"{spec} is a {kind}, not an asched Scheduler")
    return App(spec, target, _on_start_hook(module))


def _import(module_name: str) -> ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise AppError(
                f"no module named {module_name!r} (looked in {cwd} and on sys.path)"
            ) from None
        raise AppError(f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:
        raise AppError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None


def _on_start_hook(module: ModuleType) -> OnStart | None:
    hook = getattr(module, "on_start", None)
    if hook is None:
        return None
    if not inspect.iscoroutinefunction(hook):
        raise AppError(f"{module.__name__}.on_start must be an async function taking the scheduler")
    found: OnStart = hook
    return found


def choose_store(cli_store: str | None, scheduler: Scheduler) -> str | None:
    """The store URL to switch the app's scheduler to, or None to keep its own.

    ``--store`` wins; else the app's own store if it is not in memory; else
    :data:`DEFAULT_WORKER_STORE`, so a worker is durable by default."""
    if cli_store is not None:
        return cli_store
    if not isinstance(scheduler.store, MemoryStore):
        return None
    return DEFAULT_WORKER_STORE


def describe_store(store: Store) -> str:
    path = getattr(store, "path", None)
    if isinstance(path, str):
        return f"{type(store).__name__} {os.path.abspath(path)}"
    if isinstance(store, MemoryStore):
        return "memory (nothing survives a restart)"
    return type(store).__name__
