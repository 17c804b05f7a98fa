"""Task stores, chosen by URL: ``memory://``, ``sqlite:///path.db``, ``redis://host/0``."""

from __future__ import annotations

from asched.errors import ConfigError
from asched.stores.base import Lease, Store
from asched.stores.memory import MemoryStore

__all__ = ["Lease", "MemoryStore", "Store", "open_store"]


def open_store(url: str, *, read_only: bool = False) -> Store:
    """Build (not yet open) the store a URL names; adapters are imported lazily.
    ``read_only`` (SQLite) opens it for reading only: nothing is created or migrated."""
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        from asched.stores.sqlite.store import SQLiteStore

        return SQLiteStore.from_url(url, read_only=read_only)
    if scheme in ("redis", "rediss"):
        try:
            from asched.stores.redis import RedisStore
        except ImportError as exc:  # the redis extra is not installed
            raise ConfigError(
                "store_url", url, f"needs the redis package: pip install 'asched[redis]' ({exc})"
            ) from None
        return RedisStore.from_url(url)
    raise ConfigError(
        "store_url",
        url,
        "unknown store scheme; use memory://, sqlite:///relative.db, sqlite:////abs/path.db or redis://host:6379/0",
    )
