"""SQLite persistence: every accepted object is written before the API answers.

State lives in memory for speed; this store is the write-through copy that a restarted
server loads. One generic table holds objects by kind and key (JSON documents); logs
are an append-only table. WAL mode with ``synchronous=NORMAL``: a committed write
survives a crash or kill of the server process.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

__all__ = ["Store"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_message ON logs (message_id);
"""


class Store:
    """A small key/document store over one SQLite connection (used from one thread)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._in_tx = False
        self._dumps = json.JSONEncoder(separators=(",", ":")).encode

    def _begin(self) -> None:
        if not self._in_tx:
            self._db.execute("BEGIN")
            self._in_tx = True

    def put(self, kind: str, key: str, data: dict[str, Any]) -> None:
        self._begin()
        self._db.execute(
            "INSERT OR REPLACE INTO objects (kind, key, data) VALUES (?, ?, ?)",
            (kind, key, self._dumps(data)),
        )

    def put_many(self, rows: list[tuple[str, str, dict[str, Any]]]) -> None:
        self._begin()
        self._db.executemany(
            "INSERT OR REPLACE INTO objects (kind, key, data) VALUES (?, ?, ?)",
            [(kind, key, self._dumps(data)) for kind, key, data in rows],
        )

    def delete(self, kind: str, key: str) -> None:
        self._begin()
        self._db.execute("DELETE FROM objects WHERE kind = ? AND key = ?", (kind, key))

    def load(self, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, data in self._db.execute(
            "SELECT key, data FROM objects WHERE kind = ?", (kind,)
        ).fetchall():
            yield key, json.loads(data)

    def add_logs(self, entries: list[dict[str, Any]]) -> None:
        self._begin()
        self._db.executemany(
            "INSERT INTO logs (time, message_id, state, data) VALUES (?, ?, ?, ?)",
            [(e["time"], e["messageId"], e["state"], self._dumps(e)) for e in entries],
        )

    def iter_logs(self, before_seq: int | None, chunk: int = 500) -> Iterator[tuple[int, dict[str, Any]]]:
        """Logs newest first, starting below ``before_seq``."""
        upper = before_seq if before_seq is not None else 2**62
        while True:
            rows = self._db.execute(
                "SELECT seq, data FROM logs WHERE seq < ? ORDER BY seq DESC LIMIT ?",
                (upper, chunk),
            ).fetchall()
            if not rows:
                return
            for seq, data in rows:
                yield seq, json.loads(data)
            upper = rows[-1][0]

    def commit(self) -> None:
        if self._in_tx:
            self._db.execute("COMMIT")
            self._in_tx = False

    def close(self) -> None:
        self.commit()
        self._db.close()
