"""The broker message codec: JSON (orjson) only, an optional HMAC-SHA256 signature,
and a size limit checked both ways.

A signed message is ``<64 hex digits of HMAC-SHA256(key, payload)>.<payload>``;
an unsigned one is the JSON payload itself.  With a key, unsigned or wrongly
signed messages are rejected, so a publisher without the key cannot inject
tasks; without one, a signed message is read but cannot be checked.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from asched.broker.errors import MessageRejectedError, MessageTooLargeError

DEFAULT_MAX_MESSAGE_BYTES = 1 << 20
_SIGNATURE_HEX = 64
_SEPARATOR = b"."


class MessageCodec:
    """Encodes dicts to message bodies and back; ``secret`` turns signing on."""

    __slots__ = ("_key", "max_bytes")

    def __init__(
        self, secret: str | bytes | None = None, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 64:
            raise ValueError(f"max_bytes must be an integer >= 64, not {max_bytes!r}")
        if isinstance(secret, str):
            secret = secret.encode()
        if secret is not None and not secret:
            raise ValueError("secret must not be empty; pass None to turn signing off")
        self._key = secret
        self.max_bytes = max_bytes

    @property
    def signs(self) -> bool:
        return self._key is not None

    def encode(self, message: dict[str, Any]) -> bytes:
        payload = orjson.dumps(message)
        if self._key is not None:
            digest = hmac.new(self._key, payload, hashlib.sha256).hexdigest().encode()
            payload = digest + _SEPARATOR + payload
        if len(payload) > self.max_bytes:
            raise MessageTooLargeError(len(payload), self.max_bytes)
        return payload

    def decode(self, body: bytes) -> dict[str, Any]:
        if len(body) > self.max_bytes:
            raise MessageRejectedError(f"{len(body)} bytes is over the limit of {self.max_bytes}")
        payload = self._verified(body)
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise MessageRejectedError("not valid JSON") from None
        if not isinstance(message, dict):
            raise MessageRejectedError("not a JSON object")
        return message

    def _verified(self, body: bytes) -> bytes:
        signed = len(body) > _SIGNATURE_HEX and body[_SIGNATURE_HEX : _SIGNATURE_HEX + 1] == b"."
        if self._key is None:
            return body[_SIGNATURE_HEX + 1 :] if signed else body
        if not signed:
            raise MessageRejectedError("unsigned, and this side requires a signature")
        payload = body[_SIGNATURE_HEX + 1 :]
        expected = hmac.new(self._key, payload, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(expected, body[:_SIGNATURE_HEX]):
            raise MessageRejectedError("bad signature")
        return payload
