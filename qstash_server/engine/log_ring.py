"""The in-memory log of a QStash server: a ring of entries, keyset-paged by sequence number."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from operator import itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # messages builds on state, which holds this ring
    from qstash_server.engine.messages import Message

__all__ = ["LogEntry", "LogRing"]

# (sequence number, time ms, the message or its stored record's JSON, state, extra fields)
LogEntry = tuple[int, int, "Message | bytes", str, dict[str, Any]]
_SEQ = itemgetter(0)


def _keys(entry: LogEntry) -> list[str]:
    """The index keys of an entry: each label of its message, and each label with its state."""
    msg = entry[2]
    if isinstance(msg, bytes) or not msg.label:
        return []
    return [k for label in msg.labels for k in (label, f"{label}\0{entry[3]}")]


class LogRing:
    """The log: entries oldest first, at most ``maxlen`` (the oldest dropped), ``seq``
    ascending. Paging is keyset pagination on ``seq``: a cursor is found by binary search,
    and a label's entries (or a label's entries in one state) through an index of sequence
    numbers, so a page costs O(page + log n) however long the log is (it was a rescan from the
    newest entry per page, and a state filter walked every entry in other states)."""

    __slots__ = ("_buf", "_by_label", "_start", "_unindexed", "maxlen")

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self._buf: list[LogEntry] = []
        self._start = 0
        # label, and label NUL state -> [dropped, seq, seq, ...]: its entries' sequence
        # numbers, ascending; the first slot counts those dropped from the front (compacted
        # at half the list)
        self._by_label: dict[str, list[int]] = {}
        # entries logged as stored records (accept-only's fast path) carry no parsed label:
        # label queries then scan (that log keeps 1,000 entries)
        self._unindexed = False

    def __len__(self) -> int:
        return len(self._buf)

    def __getitem__(self, i: int) -> LogEntry:
        n = len(self._buf)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return self._buf[(self._start + i) % n]

    def __iter__(self) -> Iterator[LogEntry]:
        return (self[i] for i in range(len(self._buf)))

    def append(self, entry: LogEntry) -> None:
        if len(self._buf) < self.maxlen:
            self._buf.append(entry)
        else:
            self._drop(self._buf[self._start])
            self._buf[self._start] = entry
            self._start = (self._start + 1) % self.maxlen
        if isinstance(entry[2], bytes):
            self._unindexed = True
        for key in _keys(entry):
            self._by_label.setdefault(key, [0]).append(entry[0])

    def _drop(self, entry: LogEntry) -> None:
        for key in _keys(entry):
            seqs = self._by_label.get(key)
            if seqs is None:
                continue
            seqs[0] += 1
            if seqs[0] + 1 >= len(seqs):
                del self._by_label[key]
            elif seqs[0] * 2 > len(seqs):
                del seqs[1:seqs[0] + 1]
                seqs[0] = 0

    def _index_of(self, seq: int) -> int:
        """The position of ``seq`` (or where it would go), oldest first."""
        n = len(self._buf)
        guess = seq - self._buf[self._start][0]  # sequence numbers are consecutive
        if 0 <= guess < n and self[guess][0] == seq:
            return guess
        return bisect_left(self, seq, key=_SEQ)

    def newest_first(self, before: int | None, label: str | None = None,
                     state: str | None = None) -> Iterator[LogEntry]:
        """Entries with ``seq < before`` (all when None), newest first; with ``label`` only
        (or mostly, when the log is not indexed) entries whose message carries it, and with
        ``state`` too only those in that state. The caller still applies its full filter."""
        n = len(self._buf)
        if n == 0:
            return
        if label is not None and not self._unindexed:
            seqs = self._by_label.get(label if state is None else f"{label}\0{state}")
            if seqs is None:
                return
            lo = seqs[0] + 1
            hi = len(seqs) if before is None else bisect_left(seqs, before, lo)
            first = self._buf[self._start][0]
            for k in range(hi - 1, lo - 1, -1):
                if seqs[k] < first:
                    return
                yield self[self._index_of(seqs[k])]
            return
        hi = n if before is None else self._index_of(before)
        for i in range(hi - 1, -1, -1):
            entry = self._buf[(self._start + i) % n]
            if state is None or entry[3] == state:  # no document built for the others
                yield entry
