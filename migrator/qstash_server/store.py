"""SQLite persistence: every accepted object is written before the API answers.

State lives in memory for speed; this store is the write-through copy that a restarted
server loads. One generic table holds objects by kind and key (JSON documents). Logs are
not stored here (the broker keeps recent ones in memory). WAL mode with ``synchronous=NORMAL``: a committed write
survives a crash or kill of the server process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from migrator.errors import ConfigError

__all__ = ["GroupCommitter", "Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
"""


_UPSERT_MANY = """
INSERT OR REPLACE INTO objects (kind, key, data)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]')
FROM json_each(?)
"""
_DELETE_MANY = """
DELETE FROM objects WHERE (kind, key) IN (
    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)
)
"""


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
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(
                f"cannot open the QStash server database {path!r}: {exc}; pass --db with a "
                "writable file path (its folder must exist) or :memory:"
            ) from None
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], str | None] = {}
        # the changes handed to the commit thread last (visible to reads until committed)
        self._inflight: dict[tuple[str, str], str | None] = {}
        # WAL lets a second connection read committed rows while the commit thread writes;
        # an in-memory database is private to its connection, so it reads under the lock
        self._reader: sqlite3.Connection | None = None
        if path != ":memory:":
            self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def put(self, kind: str, key: str, data: dict[str, Any]) -> None:
        """Queue an upsert; written (with everything else pending) by the next ``commit``."""
        self._pending[(kind, key)] = orjson.dumps(data).decode()

    def delete(self, kind: str, key: str) -> None:
        self._pending[(kind, key)] = None

    def load(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        self.commit()
        with self._lock:
            rows = self._db.execute(
                "SELECT key, data FROM objects WHERE kind = ?", (kind,)
            ).fetchall()
        for key, data in rows:
            yield key, orjson.loads(data)

    def get_many(self, kind: str, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The current documents of ``keys`` (pending and committing changes included).

        One SQLite call for all keys; absent (or deleted) keys are missing from the result.
        """
        found: dict[str, dict[str, Any]] = {}
        ask: list[str] = []
        for key in keys:
            k = (kind, key)
            if k in self._pending:
                data = self._pending[k]
            elif k in self._inflight:
                data = self._inflight[k]
            else:
                ask.append(key)
                continue
            if data is not None:
                found[key] = orjson.loads(data)
        if ask:
            query = ("SELECT key, data FROM objects WHERE kind = ? AND key IN "
                     "(SELECT value FROM json_each(?))")
            params = (kind, orjson.dumps(ask).decode())
            if self._reader is not None:
                rows = self._reader.execute(query, params).fetchall()
            else:
                with self._lock:
                    rows = self._db.execute(query, params).fetchall()
            for key, data in rows:
                found[key] = orjson.loads(data)
        return found

    def count_by(self, kind: str, field: str) -> dict[Any, int]:
        """How many committed documents of ``kind`` have each value of ``field``."""
        self.commit()
        with self._lock:
            rows = self._db.execute(
                "SELECT json_extract(data, '$.' || ?), count(*) FROM objects WHERE kind = ? "
                "GROUP BY 1", (field, kind),
            ).fetchall()
        return {value: n for value, n in rows}

    def delete_matching(self, kind: str, field: str, value: Any) -> int:
        """Delete (now) every document of ``kind`` whose ``field`` equals ``value``."""
        self.commit()
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM objects WHERE kind = ? AND json_extract(data, '$.' || ?) = ?",
                (kind, field, value),
            )
        return cur.rowcount

    def max_of(self, kind: str, field: str) -> Any:
        """The largest value of ``field`` among the committed documents of ``kind``."""
        self.commit()
        with self._lock:
            row = self._db.execute(
                "SELECT max(json_extract(data, '$.' || ?)) FROM objects WHERE kind = ?",
                (field, kind),
            ).fetchone()
        return row[0] if row else None

    def take(self) -> dict[tuple[str, str], str | None]:
        """Hand over the pending changes (on the event loop thread) for ``write``."""
        pending, self._pending = self._pending, {}
        self._inflight = pending
        return pending

    def write(self, pending: dict[tuple[str, str], str | None]) -> None:
        """Write changes in one transaction; safe to call from the commit thread.

        All rows travel as one JSON parameter (``json_each``), so SQLite does the whole
        write in one call without the GIL instead of one GIL hand-off per row.
        """
        if not pending:
            return
        deletes = orjson.dumps([k for k, v in pending.items() if v is None])
        upserts = orjson.dumps([(k[0], k[1], v) for k, v in pending.items() if v is not None])
        with self._lock:
            if deletes == b"[]":
                # one statement is its own transaction: a single call into SQLite
                self._db.execute(_UPSERT_MANY, (upserts.decode(),))
                return
            self._db.execute("BEGIN")
            self._db.execute(_DELETE_MANY, (deletes.decode(),))
            if upserts != b"[]":
                self._db.execute(_UPSERT_MANY, (upserts.decode(),))
            self._db.execute("COMMIT")

    def commit(self) -> None:
        """Write every pending change now (blocking)."""
        self.write(self.take())

    def has_pending(self) -> bool:
        return bool(self._pending)

    def close(self) -> None:
        self.commit()
        with self._lock:
            self._db.close()
            if self._reader is not None:
                self._reader.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)


class GroupCommitter:
    """Commits on a background thread while the event loop keeps serving.

    ``await commit()`` returns once every change made before the call is on disk; changes
    made while a commit runs go into the next one, so concurrent requests share commits.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qstash-commit")
        self._waiters: list[asyncio.Future[None]] = []
        self._running = False

    async def commit(self) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        if not self._running:
            self._kick(loop)
        await asyncio.shield(fut)

    def request(self) -> None:
        """Commit soon without waiting (delivery bookkeeping)."""
        if not self._running:
            self._kick(asyncio.get_running_loop())

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._store.take()
        waiters, self._waiters = self._waiters, []
        self._running = True
        done = loop.run_in_executor(self._executor, self._store.write, batch)

        def finished(f: asyncio.Future[None]) -> None:
            self._running = False
            exc = f.exception()
            for w in waiters:
                if not w.done():
                    if exc is not None:
                        w.set_exception(exc)
                    else:
                        w.set_result(None)
            if self._waiters or self._store.has_pending():
                self._kick(loop)

        done.add_done_callback(finished)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
