"""Audit: who scheduled each task and from where, and who changed it later.

Who: the ``created_by`` a call passes, else the actor set with
:func:`acting_as` (a context variable, e.g. the bot's user or a web request's
account), else the OS user.  Where: the module, function, file and line of the
first caller outside asched, plus this host's name and pid, resolved once at
start: nothing is looked up per task.  A call site's :class:`Origin` is built
once and shared by every task scheduled from it, so auditing costs a frame walk
and a dict lookup per task, not an allocation.

The origin is stored with the task (in its record's metadata); later changes
are its history (each with its reason), and requests from people or other
processes (cancel, pause, resume, re-prioritise) are added to its
``audit_trail`` with who asked, in the same write as the change itself.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import FrameType
from typing import Any

from asched.clock import utc_now
from asched.middleware.audit_file import AuditFile
from asched.model import Task
from asched.model.metadata import Origin

_actor: ContextVar[str | None] = ContextVar("asched_actor", default=None)
#: (code, line, module) of a caller captured on another thread (the facade's)
CallSite = tuple[Any, int, str]
_call_site: ContextVar[CallSite | None] = ContextVar("asched_call_site", default=None)
_MAX_SITES = 4096


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (some containers)
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


HOST = socket.gethostname()
PID = os.getpid()
OS_USER = _os_user()


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Record ``actor`` as who schedules or changes tasks within this block."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def call_site(depth: int) -> CallSite:
    """The caller ``depth`` frames up, outside asched, as a :data:`CallSite`."""
    frame = _outside(sys._getframe(depth + 1))
    return frame.f_code, frame.f_lineno, frame.f_globals.get("__name__", "?")


# code object -> whether it belongs to asched; a dict lookup per frame instead of
# reading and comparing the module name
_OURS: dict[Any, bool] = {}


def _outside(frame: FrameType) -> FrameType:
    """The first frame from ``frame`` outwards whose code is not asched's."""
    ours = _OURS
    while frame.f_back is not None:
        code = frame.f_code
        inside = ours.get(code)
        if inside is None:
            if len(ours) >= _MAX_SITES:
                ours.clear()
            inside = ours[code] = _inside_asched(frame.f_globals.get("__name__", ""))
        if not inside:
            break
        frame = frame.f_back
    return frame


@contextmanager
def called_from(site: CallSite) -> Iterator[None]:
    """Attribute what is scheduled within this block to ``site``."""
    token = _call_site.set(site)
    try:
        yield
    finally:
        _call_site.reset(token)


def current_actor() -> str:
    return _actor.get() or OS_USER


def request_entry(action: str, reason: str | None) -> dict[str, Any]:
    """An audit-trail entry for a request to change a task (cancel, pause, ...)."""
    return {
        "action": action,
        "at": utc_now().isoformat(),
        "by": current_actor(),
        "host": HOST,
        "pid": PID,
        "reason": reason,
    }


class AuditMiddleware:
    """The audit link of the middleware chain (on by default; ``audit=False`` in the
    config leaves it out)."""

    name = "audit"

    def __init__(self, log: AuditFile | None = None) -> None:
        # code object -> line -> actor -> Origin: three lookups, no key to build per task
        self._sites: dict[Any, dict[int, dict[str, Origin]]] = {}
        self._log = log

    def before_schedule(self, task: Task) -> None:
        meta = task._metadata
        if meta is not None and meta.created_by != "system":
            actor = meta.created_by
        else:
            actor = _actor.get() or OS_USER
        site = _call_site.get()
        if site is None:
            try:
                frame = sys._getframe(_FRAMES_UP)
            except ValueError:  # called from a shallower stack than the scheduling path
                frame = sys._getframe(1)
            if _OURS.get(frame.f_code) is not False:
                frame = _outside(frame)
            code, line = frame.f_code, frame.f_lineno
        else:
            code, line, _ = site
        by_actor = self._sites.get(code, _NONE).get(line, _NONE)
        origin = by_actor.get(actor)
        if origin is None:
            module = site[2] if site is not None else frame.f_globals.get("__name__", "?")
            origin = self._remember(code, line, actor, module)
        task.origin = origin
        if self._log is not None:
            self._log.record({"action": "created", "task_id": task.id, **origin.as_dict()})

    def _remember(self, code: Any, line: int, actor: str, module: str) -> Origin:
        sites = self._sites
        if len(sites) >= _MAX_SITES:
            sites.clear()
        origin = Origin(actor, module, code.co_name, code.co_filename, line, HOST, PID)
        sites.setdefault(code, {}).setdefault(line, {})[actor] = origin
        return origin


# Frames from before_schedule up to whoever called Scheduler.schedule_task (or
# schedule_many): the chain, Admission, the Scheduler method.  Starting there
# skips walking asched's own frames; _outside still walks on from an asched
# frame (the dashboard, the CLI), and a test pins the recorded line.
_FRAMES_UP = 4


_NONE: dict[Any, Any] = {}


def _inside_asched(module: str) -> bool:
    return module == "asched" or (module.startswith("asched.") and module != "asched.examples")


def audit_trail(task: Task) -> list[dict[str, Any]]:
    """Everything known about a task's life, oldest first: how it was created, every
    state change with its reason, and every recorded request."""
    origin = task.origin
    created: dict[str, Any] = {"action": "created", "at": task.created_at.isoformat()}
    if origin is not None:
        created.update(origin.as_dict())
        created["by"] = created.pop("actor")
    else:
        created["by"] = task.metadata.created_by
    entries = [created]
    for change in task.history:
        entries.append(
            {
                "action": "state",
                "at": change.at.isoformat(),
                "from": change.from_state.name,
                "to": change.to_state.name,
                "reason": change.reason,
            }
        )
    entries.extend(dict(e) for e in task.metadata.audit_trail)
    return sorted(entries, key=lambda e: str(e.get("at", "")))
