"""Module-level handlers for the fault tests that use the process executor."""

from __future__ import annotations

import time


class Meltdown(BaseException):
    pass


def exits(kind: str) -> None:
    if kind == "SystemExit":
        raise SystemExit(3)
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    raise Meltdown("core")


def sleeps(seconds: float) -> str:
    time.sleep(seconds)
    return "slept"
