"""SQLite persistence: every accepted object is written before the API answers.

State lives in memory for speed; this store is the write-through copy that a restarted
server loads (its tables and rows: ``store_schema``; the background commits:
``group_commit``). Logs are not stored here (the broker keeps recent ones in memory). WAL
mode with ``synchronous=NORMAL``: a committed write survives a crash or kill of the server
process.

A write that fails (the disk is full, the file would pass the process's size limit, an I/O
error) is rolled back and its changes are held (``restore``) for the next commit; the failure
is a ``StorageError``, logged once (and once more when writes succeed again).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import orjson

from qstash_server.engine.store_schema import (
    SCHEMA,
    DedupRow,
    MessageRow,
    Pending,
    write_statements,
)
from qstash_server.errors import ServerConfigError, StorageError

__all__ = ["Store"]

_CHECKPOINT_PAGES = 10_000
_log = logging.getLogger(__name__)


class Store:
    """A small key/document store over one SQLite connection (used from one thread)."""

    def __init__(self, path: str, *, on_disk: bool = False) -> None:
        """``on_disk`` with ``:memory:``: use a scratch file instead (removed by ``close``), so
        the rows do not live in this process's memory (accept-only mode)."""
        self._scratch: str | None = None
        if path == ":memory:" and on_disk:
            self._scratch = tempfile.mkdtemp(prefix="qstash-server-")
            path = os.path.join(self._scratch, "scratch.db")
        self.path = path
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            if path != ":memory:":
                # (a new file only) fewer, larger pages per commit: measured ~10% cheaper
                # writes than 4 KiB for bridge-shaped batches
                self._db.execute("PRAGMA page_size=8192")
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                # checkpoint every ~40 MB of WAL instead of ~4 MB: a page rewritten by many
                # commits (the last page of a table, index pages) is copied back once
                self._db.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise ServerConfigError(
                f"cannot open the QStash server database {path!r}: {exc}; pass --db with a "
                "writable file path (its folder must exist) or :memory:"
            ) from None
        self._lock = threading.Lock()
        self.failing = False  # the last write failed: changes are held, nothing acknowledged
        self._pending = Pending()
        # the changes handed to the commit thread last (visible to reads until committed)
        self._inflight = Pending()
        # WAL lets a second connection read committed rows while the commit thread writes;
        # an in-memory database is private to its connection, so it reads under the lock
        self._reader: sqlite3.Connection | None = None
        if path != ":memory:":
            self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    # ------------------------------------------------------------------ generic objects
    def put(self, kind: str, key: str, data: dict[str, Any]) -> None:
        """Queue an upsert; written (with everything else pending) by the next ``commit``."""
        self._pending.objects[(kind, key)] = orjson.dumps(data).decode()

    def delete(self, kind: str, key: str) -> None:
        self._pending.objects[(kind, key)] = None

    def load(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, data in self._committed("SELECT key, data FROM objects WHERE kind = ?", (kind,)):
            yield key, orjson.loads(data)

    # ------------------------------------------------------------------ messages
    def put_message(self, seq: int, message_id: str, queue: str | None, data: bytes) -> None:
        """Queue a message row (``data``: its JSON document), keyed by its sequence number."""
        self._pending.messages[seq] = (message_id, queue, data)

    def delete_message(self, seq: int) -> None:
        self._pending.messages[seq] = None

    @property
    def pending_messages(self) -> dict[int, MessageRow | None]:
        """The pending message rows, for a caller that queues many at once (the batch path)."""
        return self._pending.messages

    def get_message(self, seq: int) -> dict[str, Any] | None:
        """The current document of message ``seq`` (pending and committing rows included)."""
        for pending in (self._pending.messages, self._inflight.messages):
            if seq in pending:
                row = pending[seq]
                return None if row is None else orjson.loads(row[2])
        rows = self._read("SELECT data FROM messages WHERE seq = ?", (seq,))
        return orjson.loads(rows[0][0]) if rows else None

    def load_messages(self) -> Iterator[dict[str, Any]]:
        """Every committed message document, in sequence order."""
        for (data,) in self._committed("SELECT data FROM messages ORDER BY seq", ()):
            yield orjson.loads(data)

    def message_counts_by_queue(self) -> dict[str | None, int]:
        rows = self._committed("SELECT queue, count(*) FROM messages GROUP BY queue", ())
        return {queue: n for queue, n in rows}

    def max_message_seq(self) -> int:
        rows = self._committed("SELECT max(seq) FROM messages", ())
        return int(rows[0][0] or 0)

    def delete_queue_messages(self, queue: str) -> int:
        """Delete (now) every message row of ``queue``."""
        self.commit()
        with self._lock:
            cur = self._db.execute("DELETE FROM messages WHERE queue = ?", (queue,))
        return cur.rowcount

    # ------------------------------------------------------------------ dedup records
    def put_dedup(self, key: str, row: DedupRow) -> None:
        self._pending.dedup[key] = row

    def delete_dedup(self, key: str) -> None:
        self._pending.dedup[key] = None

    @property
    def pending_dedup(self) -> dict[str, DedupRow | None]:
        return self._pending.dedup

    def get_dedup(self, keys: list[str]) -> dict[str, DedupRow]:
        """The current dedup rows of ``keys`` (pending and committing ones included).

        One SQLite call for all keys; absent (or deleted) keys are missing from the result.
        """
        found: dict[str, DedupRow] = {}
        ask: list[str] = []
        pending, inflight = self._pending.dedup, self._inflight.dedup
        for key in keys:
            if key in pending:
                row = pending[key]
            elif key in inflight:
                row = inflight[key]
            else:
                ask.append(key)
                continue
            if row is not None:
                found[key] = row
        if ask:
            rows = self._read(
                "SELECT key, expires, message_id, answer FROM dedup WHERE key IN "
                "(SELECT value FROM json_each(?))", (orjson.dumps(ask).decode(),),
            )
            for key, expires, message_id, answer in rows:
                found[key] = (expires, message_id, answer)
        return found

    def load_dedup(self) -> Iterator[tuple[str, DedupRow]]:
        rows = self._committed("SELECT key, expires, message_id, answer FROM dedup", ())
        for key, expires, message_id, answer in rows:
            yield key, (expires, message_id, answer)

    # ------------------------------------------------------------------ reading
    def _committed(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        """Rows of ``query`` after writing everything pending (start-up and rare calls)."""
        self.commit()
        with self._lock:
            return self._db.execute(query, params).fetchall()

    def _read(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        """Rows of ``query`` over committed data, beside the commit thread when possible."""
        if self._reader is not None:
            return self._reader.execute(query, params).fetchall()
        with self._lock:
            return self._db.execute(query, params).fetchall()

    # ------------------------------------------------------------------ writing
    def take(self) -> Pending:
        """Hand over the pending changes (on the event loop thread) for ``write``."""
        pending, self._pending = self._pending, Pending()
        self._inflight = pending
        return pending

    def write(self, pending: Pending) -> None:
        """Write changes in one transaction; safe to call from the commit thread.

        Each table's rows travel as one parameter (``json_each``; message documents as one
        blob), so SQLite does the whole write in a few calls without the GIL instead of one
        GIL hand-off per row.
        """
        statements = write_statements(pending)
        if not statements:
            return
        with self._lock:
            try:
                if len(statements) == 1:
                    # one statement is its own transaction: a single call into SQLite
                    self._db.execute(*statements[0])
                else:
                    self._db.execute("BEGIN")
                    for statement in statements:
                        self._db.execute(*statement)
                    self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                if not self.failing:
                    self.failing = True
                    _log.error("cannot write the state file %s (%s): holding changes and "
                               "answering 500 until a write succeeds", self.path, exc)
                raise StorageError(f"the server could not store the request ({exc})") from exc
            if self.failing:
                self.failing = False
                _log.warning("the state file %s is writable again: held changes written",
                             self.path)

    def restore(self, failed: Pending) -> None:
        """Hold the changes of a failed ``write`` for the next one (on the event loop thread):
        changes made since win over them."""
        for name in ("objects", "messages", "dedup"):
            newer = getattr(self._pending, name)
            held = dict(getattr(failed, name))
            held.update(newer)
            setattr(self._pending, name, held)
        self._inflight = Pending()

    def commit(self) -> None:
        """Write every pending change now (blocking); on ``StorageError`` they stay pending."""
        batch = self.take()
        try:
            self.write(batch)
        except StorageError:
            self.restore(batch)
            raise

    def has_pending(self) -> bool:
        return bool(self._pending)

    def close(self) -> None:
        try:
            self.commit()
        except StorageError:  # logged by write; what was acknowledged is already stored
            _log.error("stopping with changes not written to %s: the messages they belong "
                       "to were never acknowledged", self.path)
        with self._lock:
            self._db.close()
            if self._reader is not None:
                self._reader.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


