"""Errors of the broker layer, under :class:`asched.errors.AschedError`.

::

    AschedError
    ├── MessageRejectedError   (ValueError)   a broker message is unsigned, forged,
    │                                          too large or not the JSON we expect
    ├── MessageTooLargeError   (ValueError)   an outgoing message is over the size limit
    └── RemoteTaskError        (RuntimeError) a handler failed on a broker worker
"""

from __future__ import annotations

from asched.errors import AschedError


class MessageRejectedError(AschedError, ValueError):
    """An incoming message failed a check; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"broker message rejected: {reason}")


class MessageTooLargeError(AschedError, ValueError):
    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"max_message_bytes: a {size}-byte message is over the limit of {limit}")


class RemoteTaskError(AschedError, RuntimeError):
    """A handler raised on a broker worker; the message keeps its ``TypeName: message``."""

    def __init__(self, error_type: str, message: str, traceback: str = "") -> None:
        self.error_type = error_type
        self.error_message = message
        self.traceback = traceback
        super().__init__(f"{error_type}: {message}" if message else error_type)
