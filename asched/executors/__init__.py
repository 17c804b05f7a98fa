"""Executors: async (in the loop), local (inline), thread (pool), process (worker processes)."""

from __future__ import annotations

from asched.executors.async_ import AsyncExecutor
from asched.executors.base import Executor
from asched.executors.local import LocalExecutor
from asched.executors.process import ProcessExecutor
from asched.executors.thread import ThreadExecutor

__all__ = ["AsyncExecutor", "Executor", "LocalExecutor", "ProcessExecutor", "ThreadExecutor"]
