"""The Redis store: ``redis://host:6379/0?prefix=myapp`` (needs the ``redis`` extra)."""

from __future__ import annotations

from asched.stores.redis.options import RedisOptions
from asched.stores.redis.store import RedisStore

__all__ = ["RedisOptions", "RedisStore"]
