"""The state file's tables, the rows a ``Store`` holds for them, and the SQL that writes them.

Messages (the one thing there are many of) have their own table keyed by their sequence
number, deduplication records theirs keyed by the dedup key; one generic table holds everything
else by kind and key (JSON documents). Changes wait in a ``Pending`` batch until a commit turns
it into a few statements (``write_statements``), each table's rows as one parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["SCHEMA", "DedupRow", "MessageRow", "Pending", "write_statements"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    queue TEXT,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dedup (
    key TEXT PRIMARY KEY,
    expires INTEGER NOT NULL,
    message_id TEXT,
    answer TEXT
) WITHOUT ROWID;
"""
# a message row: (id, queue, JSON document); None = delete
MessageRow = tuple[str, str | None, bytes]
# a dedup row: (expires ms, message id, answer JSON when it is not just {"messageId": id})
DedupRow = tuple[int, str | None, str | None]


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
# message documents travel as one blob (sliced by offset and length), their keys as JSON:
# one SQLite call for all rows, and no JSON escaping or parsing of the documents
_UPSERT_MESSAGES = """
INSERT OR REPLACE INTO messages (seq, id, queue, data)
SELECT value->>0, value->>1, value->>2, substr(?2, value->>3, value->>4) FROM json_each(?1)
"""
_DELETE_MESSAGES = "DELETE FROM messages WHERE seq IN (SELECT value FROM json_each(?))"
_UPSERT_DEDUP = """
INSERT OR REPLACE INTO dedup (key, expires, message_id, answer)
SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?)
"""
_DELETE_DEDUP = "DELETE FROM dedup WHERE key IN (SELECT value FROM json_each(?))"


@dataclass
class Pending:
    """Changes not yet written: generic objects, message rows, dedup rows (None = delete)."""

    objects: dict[tuple[str, str], str | None] = field(default_factory=dict)
    messages: dict[int, MessageRow | None] = field(default_factory=dict)
    dedup: dict[str, DedupRow | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.objects or self.messages or self.dedup)


def write_statements(pending: Pending) -> list[tuple[str, tuple[Any, ...]]]:
    """The SQL statements (with parameters) that write ``pending``: each table's rows travel
    as one parameter (``json_each``; message documents as one blob)."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    if pending.objects:
        items = pending.objects.items()
        deletes = [k for k, v in items if v is None]
        if deletes:
            out.append((_DELETE_MANY, (orjson.dumps(deletes).decode(),)))
        upserts = [(k[0], k[1], v) for k, v in items if v is not None]
        if upserts:
            out.append((_UPSERT_MANY, (orjson.dumps(upserts).decode(),)))
    if pending.messages:
        deleted: list[int] = []
        index: list[tuple[int, str, str | None, int, int]] = []
        chunks: list[bytes] = []
        offset = 1  # substr counts from 1
        for seq, row in pending.messages.items():
            if row is None:
                deleted.append(seq)
                continue
            data = row[2]
            index.append((seq, row[0], row[1], offset, len(data)))
            chunks.append(data)
            offset += len(data)
        if deleted:
            out.append((_DELETE_MESSAGES, (orjson.dumps(deleted).decode(),)))
        if index:
            out.append((_UPSERT_MESSAGES, (orjson.dumps(index).decode(), b"".join(chunks))))
    if pending.dedup:
        gone = [k for k, v in pending.dedup.items() if v is None]
        if gone:
            out.append((_DELETE_DEDUP, (orjson.dumps(gone).decode(),)))
        rows = [(k, *v) for k, v in pending.dedup.items() if v is not None]
        if rows:
            out.append((_UPSERT_DEDUP, (orjson.dumps(rows).decode(),)))
    return out
