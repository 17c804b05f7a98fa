"""Module-level handlers for the process executor tests.

Worker processes import these by module and name, so they live in a module of
their own; the workers inherit the test's ``sys.path``, which holds this folder.
Handlers that must be observed while running report their pid to the test over
a local TCP connection (see ``Beacon`` in the tests); the connection closes when
the process dies.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import socket
import time
from typing import Any


def add(a: int, b: int) -> dict[str, Any]:
    return {"sum": a + b, "echo": [a, b], "pid": os.getpid()}


def fail(message: str) -> None:
    raise ValueError(message)


def not_json() -> set[int]:
    return {1, 2}


def exit_with(code: int) -> None:
    os._exit(code)


def segfault() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
    ctypes.string_at(0)


def burn(cpu_s: float) -> int:
    """Keep one core busy until this process has used ``cpu_s`` of CPU time."""
    end = time.process_time() + cpu_s
    while time.process_time() < end:
        pass
    return os.getpid()


def _report(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(f"{os.getpid()}\n".encode())
    return conn


def spin(port: int) -> None:
    """Report, then loop forever."""
    conn = _report(port)
    while conn:
        pass


def spin_ignoring_sigterm(port: int) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    spin(port)


def hold(port: int, value: int) -> int:
    """Report, wait for the test's go-ahead, return ``value``."""
    with _report(port) as conn:
        conn.recv(1)
    return value
