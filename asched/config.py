"""SchedulerConfig: every knob, validated, with defaults and ``from_env()``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from asched.core.bounds import (
    DAY_S,
    DEFAULT_MAX_BACKOFF_S,
    MAX_BACKOFF_FACTOR,
    MAX_BACKOFF_S,
    check_seconds,
)
from asched.errors import ConfigError

ENV_PREFIX = "ASCHED_"
MAX_RESULT_TTL_S = 3653 * DAY_S
MAX_PAYLOAD_BYTES = 1 << 30


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """How a Scheduler runs.  Invalid values raise :class:`ConfigError` naming the field.

    ``timezone`` is how a naive ``execution_time`` is read: ``None`` means the
    machine's local zone (so ``datetime.now() + timedelta(hours=2)`` means what
    it says); an IANA name such as ``"Europe/Madrid"`` pins it (``""`` and
    ``"localtime"`` are refused: the first names nothing, the second differs from
    machine to machine).

    Every number has a finite range, so no setting can overflow a date, a sleep or
    a power later on (NaN and the infinities are always refused):

    ==========================  ======================  ==========
    setting                     range                   default
    ==========================  ======================  ==========
    ``default_backoff_factor``  1 to 100                2
    ``default_timeout_s``       None, or (0, 366 days]  None
    ``grace_period_s``          0 to 1 day              30 s
    ``lease_s``                 50 ms to 1 day          30 s
    ``poll_interval_s``         1 ms to 1 hour          0.5 s
    ``max_backoff_s``           0 to 366 days           1 day
    ``result_ttl_s``            None, or 0 to 10 years  7 days
    ``max_payload_bytes``       1 to 1 GiB              1 MiB
    ==========================  ======================  ==========

    ``result_ttl_s`` is how long a finished task (COMPLETED, FAILED, CANCELLED)
    is kept after it finished; ``None`` keeps every task forever.  A task type can
    override it (``@scheduler.task(..., result_ttl_s=...)``).  ``max_payload_bytes``
    limits a task's data and its result, as JSON.

    ``shared_store`` is kept for old configurations and does nothing: a durable
    store is always shared (every attempt starts under a lease).

    ``max_backoff_s`` caps every retry delay: the backoff, a ``RetryPolicy``'s
    delay and a delay a handler asks for with ``raise Retry(delay_s=...)``.
    """

    store_url: str = "memory://"
    max_concurrency: int = 1000
    key_concurrency: int = 1
    default_max_retries: int = 3
    default_backoff_factor: float = 2.0
    default_timeout_s: float | None = None
    grace_period_s: float = 30.0
    timezone: str | None = None
    thread_pool_size: int = min(32, (os.cpu_count() or 1) + 4)
    process_pool_size: int = os.cpu_count() or 1
    strict_task_types: bool = True
    use_uvloop: bool = True
    #: no effect: a durable store is always shared (kept so old settings still load)
    shared_store: bool = False
    lease_s: float = 30.0
    poll_interval_s: float = 0.5
    #: the longest wait before a retry, whatever the backoff or the handler asks for
    max_backoff_s: float = DEFAULT_MAX_BACKOFF_S
    #: RabbitMQ URL for ``executor="distributed"`` (amqp://user:password@host/vhost);
    #: kept out of repr, so the password is never printed
    broker: str | None = field(default=None, repr=False)
    #: names every exchange and queue, so several apps can share one broker
    broker_prefix: str = "asched"
    #: shared secret for HMAC-signed broker messages (workers must use the same)
    broker_secret: str | None = field(default=None, repr=False)
    #: a dispatched attempt with a timeout counts as lost if no outcome arrives
    #: within its timeout plus this long after the worker reported starting it
    broker_report_grace_s: float = 10.0
    #: how long finished tasks are kept; None keeps them forever
    result_ttl_s: float | None = 7 * DAY_S
    #: the largest task data or result, in bytes of JSON
    max_payload_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        _check_type("store_url", self.store_url, str)
        if "://" not in self.store_url:
            raise ConfigError("store_url", self.store_url, "expected a URL like sqlite:///bot.db")
        _check_positive_int("max_concurrency", self.max_concurrency)
        _check_positive_int("key_concurrency", self.key_concurrency)
        _check_positive_int("thread_pool_size", self.thread_pool_size)
        _check_positive_int("process_pool_size", self.process_pool_size)
        _check_type("default_max_retries", self.default_max_retries, int)
        if self.default_max_retries < 0:
            raise ConfigError("default_max_retries", self.default_max_retries, "must be >= 0")
        self._check_ranges()
        if self.timezone is not None:
            _check_zone(self.timezone)
        _check_type("strict_task_types", self.strict_task_types, bool)
        _check_type("shared_store", self.shared_store, bool)
        _check_type("use_uvloop", self.use_uvloop, bool)
        _check_broker(self.broker, self.broker_prefix, self.broker_secret)
        _check_range("broker_report_grace_s", self.broker_report_grace_s, 0.0, DAY_S)

    def _check_ranges(self) -> None:
        """The ranges of the class docstring's table."""
        _check_range("default_backoff_factor", self.default_backoff_factor, 1.0, MAX_BACKOFF_FACTOR)
        if self.default_timeout_s is not None:
            _check_range("default_timeout_s", self.default_timeout_s, 0.0, 366 * DAY_S, strict=True)
        _check_range("grace_period_s", self.grace_period_s, 0.0, DAY_S)
        _check_range("lease_s", self.lease_s, 0.05, DAY_S)
        _check_range("poll_interval_s", self.poll_interval_s, 0.001, 3600.0)
        _check_range("max_backoff_s", self.max_backoff_s, 0.0, MAX_BACKOFF_S)
        if self.result_ttl_s is not None:
            _check_range("result_ttl_s", self.result_ttl_s, 0.0, MAX_RESULT_TTL_S)
        _check_positive_int("max_payload_bytes", self.max_payload_bytes)
        if self.max_payload_bytes > MAX_PAYLOAD_BYTES:
            raise ConfigError("max_payload_bytes", self.max_payload_bytes, "must be <= 1 GiB")

    def replace(self, **changes: Any) -> SchedulerConfig:
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            name = sorted(unknown)[0]
            raise ConfigError(name, changes[name], "unknown setting")
        return replace(self, **changes)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> SchedulerConfig:
        """Read ``ASCHED_<FIELD>`` variables (e.g. ``ASCHED_MAX_CONCURRENCY=200``)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse_env(f.name, raw, f.default)
        values.update(overrides)
        return cls().replace(**values)


def _parse_env(name: str, raw: str, default: Any) -> Any:
    text = raw.strip()
    if isinstance(default, bool):
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(name, raw, "expected true/false")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(name, raw, "expected an integer") from None
    if isinstance(default, float) or name.endswith("_s"):
        if text.lower() in ("", "none"):
            return None
        try:
            return float(text)
        except ValueError:
            raise ConfigError(name, raw, "expected a number") from None
    return text or None


_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def _check_broker(url: Any, prefix: Any, secret: Any) -> None:
    if url is not None:
        _check_type("broker", url, str)
        if not url.startswith(("amqp://", "amqps://")):
            scheme = url.partition("://")[0] if "://" in url else "(none)"
            # the URL itself may hold a password: name only its scheme
            raise ConfigError("broker", f"{scheme}://...", "expected an amqp:// or amqps:// URL")
    _check_type("broker_prefix", prefix, str)
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError("broker_prefix", prefix, "use 1-100 of A-Z a-z 0-9 _ . -")
    if secret is not None:
        _check_type("broker_secret", secret, str)
        if not secret:
            raise ConfigError("broker_secret", "", "must not be empty (leave it unset instead)")


def _check_type(name: str, value: Any, kind: type) -> None:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(name, value, f"expected {kind.__name__}")


def _check_positive_int(name: str, value: Any) -> None:
    _check_type(name, value, int)
    if value < 1:
        raise ConfigError(name, value, "must be >= 1")


def _check_range(
    name: str, value: Any, minimum: float, maximum: float, *, strict: bool = False
) -> None:
    check_seconds(
        ConfigError, name, value, minimum=minimum, maximum=maximum, include_minimum=not strict
    )


def _check_zone(name: Any) -> None:
    _check_type("timezone", name, str)
    if not name.strip() or name == "localtime":
        raise ConfigError("timezone", name, "expected an IANA time zone name such as 'UTC'")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError("timezone", name, "unknown IANA time zone") from None
