"""The process executor's wire: length-prefixed orjson frames over a socket pair.

The scheduler sends ``{"module", "qualname", "kwargs"}``; the worker answers
``{"result": ...}`` or ``{"error": {"type", "message", "traceback"}}``.
Nothing is pickled.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import orjson

from asched.errors import ProcessTaskError

FRAME = struct.Struct("!Q")  # the byte length that prefixes every message
_CHUNK = 1 << 20


def find_by_qualname(namespace: Any, qualname: str) -> Any:
    """The object ``qualname`` (dotted) names inside ``namespace``, or None."""
    for part in qualname.split("."):
        namespace = getattr(namespace, part, None)
    return namespace


async def exchange(sock: socket.socket, request: bytes) -> bytes | None:
    """Send one request and read its reply; None if the worker hung up."""
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, FRAME.pack(len(request)) + request)
    header = await _receive(loop, sock, FRAME.size)
    if header is None:
        return None
    return await _receive(loop, sock, FRAME.unpack(header)[0])


async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = await loop.sock_recv(sock, min(size - len(data), _CHUNK))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def decode_reply(reply: bytes) -> Any:
    message = orjson.loads(reply)
    if "result" in message:
        return message["result"]
    error = message["error"]
    raise ProcessTaskError(error["type"], error["message"], error["traceback"])


def error_reply(error_type: str, message: str, trace: str) -> bytes:
    error = {"type": error_type, "message": _utf8(message), "traceback": _utf8(trace)}
    return orjson.dumps({"error": error})


def _utf8(text: str) -> str:
    """orjson refuses lone surrogates; escape them."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
