"""The server's log ring: keyset paging by sequence number and the per-label index agree with a
plain newest-first filter, across wrap-around and dropped entries (pure logic: no server)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from qstash_server.engine.log_ring import LogEntry, LogRing


@dataclass
class _Msg:  # what the ring reads of a Message: its label(s)
    label: str | None

    @property
    def labels(self) -> list[str]:
        return [p for p in (self.label or "").split(",") if p]


def _entry(seq: int, label: str | None) -> LogEntry:
    return (seq, seq, cast(Any, _Msg(label)), "CREATED", {})


def _pages(ring: LogRing, label: str | None, size: int) -> list[int]:
    out: list[int] = []
    before: int | None = None
    while True:
        page = []
        for e in ring.newest_first(before, label):
            if label is None or label in cast(Any, e[2]).labels:
                page.append(e[0])
            if len(page) == size:
                break
        out += page
        if len(page) < size:
            return out
        before = page[-1]


def test_keyset_pages_match_a_full_filter_across_wrap_around() -> None:
    ring = LogRing(50)
    every: list[LogEntry] = []
    for seq in range(1, 138):
        label = "a" if seq % 3 == 0 else ("a,b" if seq % 7 == 0 else "b")
        every.append(_entry(seq, label))
        ring.append(every[-1])
    kept = every[-50:]
    assert [e[0] for e in ring] == [e[0] for e in kept]
    for wanted in ("a", "b", None):
        want = [e[0] for e in reversed(kept)
                if wanted is None or wanted in cast(Any, e[2]).labels]
        for size in (1, 4, 100):
            assert _pages(ring, wanted, size) == want, (wanted, size)
    assert list(ring.newest_first(None, "nobody")) == []
    assert [e[0] for e in ring.newest_first(100, None)][:2] == [99, 98]


def test_a_label_whose_entries_were_all_dropped_is_forgotten() -> None:
    ring = LogRing(3)
    ring.append(_entry(1, "old"))
    for seq in range(2, 10):
        ring.append(_entry(seq, "new"))
    assert list(ring.newest_first(None, "old")) == []
    assert "old" not in ring._by_label
    assert len(ring._by_label["new"]) <= 2 * 3 + 1  # compacted, not growing with the log


def test_a_state_filter_reads_the_label_and_state_index() -> None:
    ring = LogRing(40)
    for seq in range(1, 101):
        ring.append((seq, seq, cast(Any, _Msg("a")), "CREATED" if seq % 4 == 0 else "ACTIVE", {}))
    want = [s for s in range(100, 60, -1) if s % 4 == 0]
    assert [e[0] for e in ring.newest_first(None, "a", "CREATED")] == want
    assert [e[0] for e in ring.newest_first(90, "a", "CREATED")] == [s for s in want if s < 90]
    assert [e[0] for e in ring.newest_first(None, None, "CREATED")] == want  # unindexed: skip
    assert list(ring.newest_first(None, "a", "DELIVERED")) == []
