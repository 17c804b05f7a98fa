"""RedisStore's settings: what the URL may carry beyond redis-py's own options."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from asched.errors import ConfigError

_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
CLOCKS = ("server", "caller")
DEFAULT_MAX_PAYLOAD_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """``prefix``: the application's key prefix.  ``clock``: ``"server"`` times leases
    with Redis ``TIME`` (one clock for every machine); ``"caller"`` uses the ``now_s``
    the scheduler passes (its own clock, e.g. a virtual one in tests).
    ``result_ttl_s``: finished tasks are purged that long after they finish (None:
    kept).  ``signing_key``: HMAC-SHA256 key; records are signed and a record whose
    signature does not match is refused.  ``max_payload_bytes``: the largest task
    payload (JSON) accepted.  ``reconnect_deadline_s``: how long a call keeps
    retrying while Redis is unreachable before it raises."""

    prefix: str = "asched"
    clock: str = "server"
    result_ttl_s: float | None = None
    signing_key: bytes | None = None
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    reconnect_deadline_s: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not _PREFIX.fullmatch(self.prefix):
            raise ConfigError("prefix", self.prefix, "expected 1-64 of A-Z a-z 0-9 _ . : -")
        if self.clock not in CLOCKS:
            raise ConfigError("clock", self.clock, f"one of {', '.join(CLOCKS)}")
        if self.result_ttl_s is not None:
            _check_positive("result_ttl_s", self.result_ttl_s)
        if self.signing_key is not None and (
            not isinstance(self.signing_key, bytes) or len(self.signing_key) < 16
        ):
            raise ConfigError("signing_key", "<hidden>", "expected at least 16 bytes")
        size = self.max_payload_bytes
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ConfigError("max_payload_bytes", size, "expected an integer > 0")
        _check_positive("reconnect_deadline_s", self.reconnect_deadline_s)


def _check_positive(field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(field, value, "expected a number > 0")
    if not (value > 0 and math.isfinite(value)):
        raise ConfigError(field, value, "expected a finite number > 0")


def _number(field: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(field, raw, "expected a number") from None


def _integer(field: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(field, raw, "expected an integer") from None


def _signing_key(field: str, raw: str) -> bytes:
    value = os.environ.get(raw)
    if not value:
        raise ConfigError(field, raw, "names an environment variable that is not set")
    return value.encode()


_OURS = {
    "prefix": lambda field, raw: raw,
    "clock": lambda field, raw: raw,
    "result_ttl_s": _number,
    "max_payload_bytes": _integer,
    "reconnect_deadline_s": _number,
    # The key itself never goes in a URL (URLs end up in logs): name a variable.
    "signing_key_env": _signing_key,
}


def split_url(url: str) -> tuple[str, RedisOptions]:
    """``redis://[user:pass@]host:port/db?prefix=app&...`` to (the URL redis-py gets,
    our options).  Query options redis-py knows (``socket_timeout`` ...) stay in it."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("store_url", safe_url(url), "expected redis://, rediss:// or unix://")
    ours: dict[str, Any] = {}
    theirs: list[tuple[str, str]] = []
    for name, raw in parse_qsl(parts.query, keep_blank_values=True):
        parse = _OURS.get(name)
        if parse is None:
            theirs.append((name, raw))
        else:
            key = "signing_key" if name == "signing_key_env" else name
            ours[key] = parse(name, raw)
    rest = urlunsplit(parts._replace(query=urlencode(theirs)))
    return rest, RedisOptions(**ours)


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
