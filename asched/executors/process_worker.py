"""The worker process side of the process executor: answer one call at a time.

A worker imports a handler by module and qualified name the first time it is
asked for it, calls it with the JSON arguments and sends back the JSON result,
or the error (any exception, ``SystemExit`` and ``KeyboardInterrupt`` too: a
handler's exit is reported, it does not end the worker).
"""

from __future__ import annotations

import importlib
import signal
import socket
import traceback
from collections.abc import Callable
from typing import Any

import orjson

from asched.executors.process_wire import FRAME, error_reply, find_by_qualname


def worker_main(sock: socket.socket) -> None:
    """A worker process: answer one request at a time until the scheduler hangs up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the scheduler, which stops us
    handlers: dict[str, Callable[..., Any]] = {}
    with sock:
        try:
            while (request := _read_frame(sock)) is not None:
                reply = _answer(request, handlers)
                sock.sendall(FRAME.pack(len(reply)) + reply)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the scheduler went away


def _read_frame(sock: socket.socket) -> bytes | None:
    header = _read_exact(sock, FRAME.size)
    return None if header is None else _read_exact(sock, FRAME.unpack(header)[0])


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray(size)
    view = memoryview(data)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:])
        if count == 0:
            return None
        got += count
    return bytes(data)


def _answer(request: bytes, handlers: dict[str, Callable[..., Any]]) -> bytes:
    name = "the handler"
    try:
        call = orjson.loads(request)
        name = f"{call['module']}.{call['qualname']}"
        fn = handlers.get(name)
        if fn is None:
            fn = handlers[name] = _import(call["module"], call["qualname"])
        result = fn(**call["kwargs"])
    except BaseException as exc:  # SystemExit, KeyboardInterrupt...: reported, not fatal
        return error_reply(type(exc).__name__, str(exc), traceback.format_exc())
    try:
        return orjson.dumps({"result": result})
    except TypeError as exc:
        message = f"the result of {name} is not JSON-serializable: {exc}"
        return error_reply("TypeError", message, "")


def _import(module: str, qualname: str) -> Callable[..., Any]:
    found: object = find_by_qualname(importlib.import_module(module), qualname)
    if not callable(found):
        raise LookupError(f"no callable {module}.{qualname} in the worker process")
    return found
