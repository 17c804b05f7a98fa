"""SQLiteStore's file: creating it privately, opening it, and naming what went wrong.

Permissions.  A new database is created ``0600`` and any folder made for it
``0700`` (the umask can only make them stricter), because task payloads and
results may be private.  SQLite gives the ``-wal`` and ``-shm`` files the
database file's own mode.

Every ``sqlite3`` error that leaves the store becomes a :class:`StoreError`
naming the file: busy, full, damaged, read-only, or not an asched store.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from urllib.parse import quote

from asched.errors import (
    StoreBusyError,
    StoreCorruptError,
    StoreError,
    StoreFullError,
)

logger = logging.getLogger("asched.stores.sqlite")

SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 5, 6, 8
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 11, 13, 14, 26
_FILE_MODE = 0o600
_DIR_MODE = 0o700


def create_private(path: str) -> None:
    """Make the missing folders (0700) and an empty database file (0600) if absent;
    refuse a file that exists but cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    missing = []
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    try:
        for made in reversed(missing):
            os.mkdir(made, _DIR_MODE)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, _FILE_MODE)
    except FileExistsError:
        if not os.access(path, os.W_OK):  # before SQLite makes -wal and -shm beside it
            raise StoreError(
                f"sqlite store {path}: the database file or its folder is read-only"
            ) from None
        return
    except OSError as exc:
        raise StoreError(f"sqlite store {path}: cannot create the database: {exc}") from None
    os.close(fd)


def connect(path: str, *, read_only: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit); usable from the
    one thread that runs it, which may differ from the one that made it."""
    uri = None
    if read_only:
        uri = f"file:{quote(os.path.abspath(path))}?mode=ro"
        if not _writable(path):
            # A read-only file or folder: no -shm can be made, so read it as a
            # snapshot (nobody can be writing to it either).
            uri += "&immutable=1"
    try:
        if uri is not None:
            return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        return sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise store_error(exc, path) from None


def _writable(path: str) -> bool:
    folder = os.path.dirname(os.path.abspath(path))
    return os.access(path, os.W_OK) and os.access(folder, os.W_OK)


def check_whole(db: sqlite3.Connection, path: str) -> None:
    """Refuse a file that is shorter than its header says (truncated), or whose
    header is not SQLite's: cheap checks that run on every open."""
    try:
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        pages = int(db.execute("PRAGMA page_count").fetchone()[0])
        db.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlite3.Error as exc:
        raise store_error(exc, path) from None
    size = os.path.getsize(path)
    if size < page_size * pages and not os.path.exists(path + "-wal"):
        raise StoreCorruptError(
            f"sqlite store {path}: the database file is damaged "
            f"(truncated: {size} bytes, its header says {page_size * pages})"
        )


def check_asched(db: sqlite3.Connection, path: str) -> int:
    """The file's schema version; a file without asched's tables is refused."""
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        raise store_error(exc, path) from None
    if "tasks" not in tables or version < 1:
        raise StoreError(f"not an asched store: {path}")
    return version


def error_code(exc: sqlite3.Error) -> int:
    return int(getattr(exc, "sqlite_errorcode", -1)) & 0xFF


def store_error(exc: sqlite3.Error, path: str) -> StoreError:
    code = error_code(exc)
    if code == SQLITE_FULL:
        return StoreFullError(f"sqlite store {path}: the disk or database is full ({exc})")
    if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return StoreCorruptError(f"sqlite store {path}: the database file is damaged ({exc})")
    if code in (SQLITE_BUSY, SQLITE_LOCKED):
        return StoreBusyError(f"sqlite store {path}: the database is locked ({exc})")
    if code == SQLITE_READONLY:
        return StoreError(f"sqlite store {path}: the database file or its folder is read-only")
    if code == SQLITE_CANTOPEN:
        return StoreError(f"sqlite store {path}: cannot open the database file ({exc})")
    return StoreError(f"sqlite store {path}: {exc}")


def unexpected_error(exc: BaseException, path: str) -> StoreError:
    logger.error("sqlite store %s: write failed", path, exc_info=exc)
    error = StoreError(f"sqlite store {path}: write failed: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error
