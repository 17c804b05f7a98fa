"""Middleware: a small chain of hooks around scheduling and running tasks.

``before_schedule`` sees every new task before it is stored (and may refuse
it), ``before_run`` every attempt before its handler starts, ``after_run``
every attempt's outcome.  :class:`AuditMiddleware` is one link: it records who
scheduled each task and from where.
"""

from __future__ import annotations

from asched.middleware.audit import AuditMiddleware, acting_as, audit_trail, current_actor
from asched.middleware.chain import Middleware, MiddlewareChain
from asched.model.metadata import Origin

__all__ = [
    "AuditMiddleware",
    "Middleware",
    "MiddlewareChain",
    "Origin",
    "acting_as",
    "audit_trail",
    "current_actor",
]
