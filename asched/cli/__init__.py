"""The ``asched`` command line: the worker (``run``), operator commands and the demo."""

from __future__ import annotations

from asched.cli.main import main

__all__ = ["main"]
