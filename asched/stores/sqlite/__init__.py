"""The SQLite store: one file, WAL, group commit; leases for several processes.

Durability.  The file runs in WAL mode.  With ``synchronous="NORMAL"`` (the
default) a commit is in the WAL file before ``insert``/``save`` return, so an
acknowledged write survives a crash or SIGKILL of this process; the last
commits before a power loss or OS crash may be lost (SQLite fsyncs only at
checkpoints).  ``synchronous="FULL"`` fsyncs every commit and survives power
loss too, at the cost of one fsync per group.

Group commit.  ``insert`` and ``save`` only queue their rows and wait.  The
writer (:mod:`asched.stores.sqlite.writer`) takes everything queued since its
last commit and writes it in a single ``BEGIN IMMEDIATE … COMMIT``, so
thousands of concurrent ``schedule_task`` calls cost a handful of commits; a
one-task call is kept as a row and a future (:mod:`asched.stores.sqlite.lone`).
The whole transaction is one call on the writer's own thread
(:mod:`asched.stores.sqlite.dbthread`, stdlib ``sqlite3``): one thread hop per
group, not one per statement.  Inside it, rows go as multi-row ``VALUES``
lists, one statement per piece, not ``executemany``: ``sqlite3`` takes the GIL
back after every step, and while the event loop is busy each of those waits
for it (see :mod:`asched.stores.sqlite.bulk`).  Each ``insert`` call stays
all-or-nothing: a duplicate id or idempotency key fails that call only (it is
retried alone inside a SAVEPOINT), never its neighbours in the group.

Locks.  Every write transaction is ``BEGIN IMMEDIATE``: a deferred one that
later needs the write lock fails at once with "database is locked", without
waiting.  SQLite waits ``busy_timeout_ms`` for a lock on each try; past that
the store retries with jittered backoff until ``busy_deadline_s``, then raises
:class:`StoreBusyError`.  A full disk raises :class:`StoreFullError`.

Reads use a second connection on a second thread, which in WAL mode never
waits for the writer, and first wait for every write queued before them
(read-your-writes).  ``read_only=True`` opens only that connection, read-only:
nothing is created, migrated or switched to WAL, and a file that is not an
asched store is refused ("not an asched store: PATH").  That is how operator
commands read, and it works on a read-only file or folder.

State.  The ``lifecycle`` column is the truth a read returns.  SCHEDULED (armed
in one process) is never stored: a row says QUEUED until an attempt starts;
``claim_start`` makes it RUNNING in the claim itself, before the handler runs.

Other writers.  ``changed_elsewhere`` compares ``PRAGMA data_version`` on the
writer connection, which moves only when another connection committed: a
scheduler checks it every few tens of milliseconds and claims new work at
once, instead of waiting for its poll interval.

Retention.  A new file uses ``auto_vacuum=INCREMENTAL``; ``purge_finished``
deletes a batch of finished rows and gives their pages back to the disk.

Leases.  ``claim``, ``claim_due``, ``renew`` and ``release`` queue like saves
and run inside the same group transaction, so the write lock makes each one
atomic against every process on the file; fenced saves are checked against the
lease columns in that transaction too (see :mod:`asched.stores.sqlite.leases`).
A start-claim goes ahead of the groups in flight, in a group of its own; where
the tokens it expects hold, it is one UPDATE, committed on its own.

Layout: ``tasks`` holds the columns the engine filters and sorts on, plus the
record as JSON text (never pickle) with its ``version``: the compact form of
:mod:`asched.model.compact` (version 2; rows written before it hold version 1,
the :meth:`Task.to_dict` shape without ``data`` and ``result``).  The data is in ``task_data``,
written once at insert (no row for ``{}``), and the result in ``task_results``,
written once when the task completes: a state save rewrites only the ``tasks``
row (SQLite rewrites a whole row on any UPDATE), and a trigger deletes both
with their task.  ``schedules`` holds recurring-schedule records as JSON.
``PRAGMA user_version`` is the schema version; ``MIGRATIONS`` upgrades older
files on open.  A row that cannot be read is logged, counted in
``corrupt_rows`` and skipped, never fatal.

Modules: ``store`` (SQLiteStore), ``writer`` (group commit), ``group`` (one
transaction), ``lone`` (one-task inserts), ``bulk`` (multi-row statements),
``saves``, ``leases``, ``slots`` and ``retention`` (their SQL), ``rules`` and
``cluster`` (cluster-wide rules and records), ``reads``, ``connection`` (schema
and rows), ``files`` (the file and its errors), ``settings``, ``dbthread`` (a
connection on its own thread).
"""

from __future__ import annotations

from asched.stores.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
