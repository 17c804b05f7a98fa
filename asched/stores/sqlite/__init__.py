"""The SQLite store: one file, WAL, group commit; leases for several processes."""

from __future__ import annotations

from asched.stores.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
