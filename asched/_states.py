"""Lifecycle states as plain module constants.

Looking up an enum member as a class attribute (``TaskLifecycle.RUNNING``)
costs about 0.2 µs on CPython 3.11; the engine's hot paths read these instead.
"""

from __future__ import annotations

from asched.model import TaskLifecycle

CREATED = TaskLifecycle.CREATED
QUEUED = TaskLifecycle.QUEUED
SCHEDULED = TaskLifecycle.SCHEDULED
PAUSED = TaskLifecycle.PAUSED
RUNNING = TaskLifecycle.RUNNING
RETRYING = TaskLifecycle.RETRYING
FAILED = TaskLifecycle.FAILED
COMPLETED = TaskLifecycle.COMPLETED
CANCELLED = TaskLifecycle.CANCELLED
