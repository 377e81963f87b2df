"""The QStash side of a verify: QStash's logs streamed page by page into per-partition bitmaps.

Each page is folded and dropped. Per endpoint and partition a :class:`Tally` keeps, per offset,
how many messages were delivered (0, 1, 2+) and whether one was created, as bits; what went
wrong (failed, cancelled, retrying, a body that differs, a second delivery) is kept with its
message ids, which grows with the problems, not with the records. Reads, newest first:

* ``DELIVERED`` entries of the label: exhaustively, or (above ``max_records``) for random time
  windows, the sample;
* the states of trouble (``FAILED``, ``CANCELED``, ``CANCEL_REQUESTED``, ``RETRY``, ``ERROR``),
  always exhaustively, and the DLQ for the failed messages' ``dlqId``;
* ``CREATED`` entries (exhaustive only): a record with a created message that is neither
  delivered, failed nor cancelled is still in QStash;
* ``DELIVERED`` entries of earlier hand-offs' labels (a replay across hand-offs);
* a second pass only for what needs message ids the bits cannot hold (a duplicate's first
  message, a created message still pending).

A destination publishing to a URL group has one :class:`Tally` per endpoint of the group:
QStash fans the record out into one message per endpoint (``topicName`` = the group, ``url``
= the endpoint), and each endpoint's delivery is an outcome of its own.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.bridge.config import PublishUrlGroupDestination
from migrator.cutover.offset_bits import OffsetBits, OffsetCount
from migrator.cutover.qstash_logs import LogReader, body_digest, coordinate
from migrator.cutover.verify_kafka import KafkaPartition, digest_prefix

__all__ = ["Tally", "read_outcomes"]

Partition = tuple[str, int]
_TROUBLE = ("FAILED", "CANCELED", "CANCEL_REQUESTED", "RETRY", "ERROR")
_WINDOWS = 64


@dataclass
class Tally:
    """What QStash's logs say about one endpoint's messages for one partition's range."""

    endpoint: str
    tp: Partition
    start: int
    end: int
    delivered: OffsetCount = field(init=False)
    created: OffsetBits = field(init=False)
    sampled: OffsetBits | None = None
    not_compared: OffsetBits = field(init=False)  # --deep: a delivered body not compared
    failed: dict[int, tuple[str, int | None]] = field(default_factory=dict)  # mid, status
    cancelled: dict[int, str] = field(default_factory=dict)
    retrying: dict[int, tuple[str, str]] = field(default_factory=dict)  # mid, state
    created_ids: dict[int, str] = field(default_factory=dict)  # pending: found in pass 2
    mismatch: dict[int, tuple[str, str]] = field(default_factory=dict)  # mid, QStash sha256
    duplicates: dict[int, dict[str, int]] = field(default_factory=dict)  # mid -> created ms
    earlier: Counter[int] = field(default_factory=Counter)
    dlq: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # mid -> dlqId

    def __post_init__(self) -> None:
        self.delivered = OffsetCount(self.start, self.end)
        self.created = OffsetBits(self.start, self.end)
        self.not_compared = OffsetBits(self.start, self.end)

    def pending(self, off: int) -> bool:
        """Created (or retrying) and neither delivered, failed nor cancelled."""
        return (not self.delivered[off] and off not in self.failed and off not in self.cancelled
                and (off in self.retrying or off in self.created))


def _created(entry: Mapping[str, Any]) -> int:
    return int(entry.get("createdAt") or entry.get("time") or 0)


def _status(entry: Mapping[str, Any]) -> int | None:
    s = entry.get("responseStatus")
    return s if isinstance(s, int) else None


class _Fold:
    """Routes log entries of one destination to the tally of their endpoint and partition."""

    def __init__(self, dest: Any, endpoints: Iterable[str], ranges: Mapping[Partition, tuple[int, int]],
                 kafka: Mapping[Partition, KafkaPartition], deep: bool) -> None:
        self.group = dest.url_group if isinstance(dest, PublishUrlGroupDestination) else None
        self.tallies = {(url, tp): Tally(url, tp, s, e) for url in endpoints
                        for tp, (s, e) in ranges.items()}
        self.kafka = kafka
        self.deep = deep

    def locate(self, entry: Mapping[str, Any]) -> tuple[Tally, int, str] | None:
        mid = entry.get("messageId")
        if not isinstance(mid, str):
            return None
        if self.group is not None and entry.get("topicName") != self.group:
            return None
        c = coordinate(entry)
        if c is None:
            return None
        t = self.tallies.get((str(entry.get("url")), (c[0], c[1])))
        if t is None or not t.start <= c[2] < t.end:
            return None
        return t, c[2], mid

    def delivered(self, entries: Iterable[Mapping[str, Any]], *, skip: frozenset[str] = frozenset(),
                  sample: bool = False, budget: int | None = None) -> int:
        read = 0
        for entry in entries:
            if budget is not None and read >= budget:
                break
            found = self.locate(entry)
            if found is None or found[2] in skip:
                continue
            t, off, mid = found
            read += 1
            if sample and t.sampled is not None:
                t.sampled.add(off)
            if t.delivered.bump(off) == 2:
                t.duplicates.setdefault(off, {})[mid] = _created(entry)
            if self.deep:
                self._compare(t, off, mid, entry)
        return read

    def _compare(self, t: Tally, off: int, mid: str, entry: Mapping[str, Any]) -> None:
        kp = self.kafka.get(t.tp)
        want = kp.digest(off) if kp is not None else None
        got = body_digest(entry)
        if got is None or want is None:
            t.not_compared.add(off)
        elif digest_prefix(got) != want:
            t.mismatch.setdefault(off, (mid, got))

    def trouble(self, state: str, entries: Iterable[Mapping[str, Any]]) -> None:
        for entry in entries:
            found = self.locate(entry)
            if found is None:
                continue
            t, off, mid = found
            if state == "FAILED":
                t.failed.setdefault(off, (mid, _status(entry)))
            elif state in ("CANCELED", "CANCEL_REQUESTED"):
                t.cancelled.setdefault(off, mid)
            else:
                t.retrying.setdefault(off, (mid, state))

    def created(self, entries: Iterable[Mapping[str, Any]]) -> None:
        for entry in entries:
            found = self.locate(entry)
            if found is not None:
                found[0].created.add(found[1])

    def ids(self, entries: Iterable[Mapping[str, Any]], state: str) -> None:
        """Pass 2: the message ids of duplicates (DELIVERED) or pending records (CREATED)."""
        for entry in entries:
            found = self.locate(entry)
            if found is None:
                continue
            t, off, mid = found
            if state == "DELIVERED" and off in t.duplicates:
                t.duplicates[off][mid] = _created(entry)
            elif state == "CREATED" and t.pending(off) and off not in t.retrying:
                t.created_ids.setdefault(off, mid)


def _windows(t0: int, t1: int, rng: random.Random) -> Iterator[tuple[int, int]]:
    span = max(1, (t1 - t0) // _WINDOWS)
    order = list(range(_WINDOWS))
    rng.shuffle(order)
    for i in order:
        yield t0 + i * span, (t1 if i == _WINDOWS - 1 else t0 + (i + 1) * span - 1)


def read_outcomes(reader: LogReader, dest: Any, endpoints: Iterable[str], *,
                  ranges: Mapping[Partition, tuple[int, int]],
                  kafka: Mapping[Partition, KafkaPartition], label: str,
                  earlier_labels: Iterable[str], since_ms: int, deep: bool, exhaustive: bool,
                  max_records: int, rng: random.Random,
                  ) -> tuple[dict[tuple[str, Partition], Tally], dict[str, Any] | None]:
    """Every :class:`Tally` of ``dest`` (keyed by endpoint URL and partition), and the sample's
    description when not ``exhaustive``. Raises ServiceError when QStash cannot be read."""
    fold = _Fold(dest, endpoints, ranges, kafka, deep)
    for old in earlier_labels:  # a later hand-off delivers under dedup ids of its own
        for entry in reader.logs(label=old, state="DELIVERED", from_ms=since_ms - 86_400_000):
            found = fold.locate(entry)
            if found is not None:
                found[0].earlier[found[1]] += 1
    for state in _TROUBLE:
        fold.trouble(state, reader.logs(label=label, state=state, from_ms=since_ms))
    failed = {mid: t for t in fold.tallies.values() for mid, _s in t.failed.values()}
    if failed:
        for entry in reader.dlq(label=label):
            mid, dlq_id = entry.get("messageId"), entry.get("dlqId")
            if isinstance(mid, str) and mid in failed and isinstance(dlq_id, str):
                failed[mid].dlq[mid] = (dlq_id, _status(entry))
    sample: dict[str, Any] | None = None
    if exhaustive:
        fold.delivered(reader.logs(label=label, state="DELIVERED", from_ms=since_ms))
        fold.created(reader.logs(label=label, state="CREATED", from_ms=since_ms))
    else:
        sample = _sample(reader, fold, label, since_ms, max_records, rng)
    if any(t.duplicates for t in fold.tallies.values()):
        fold.ids(reader.logs(label=label, state="DELIVERED", from_ms=since_ms), "DELIVERED")
    if exhaustive and any(t.pending(off) and off not in t.retrying
                          for t in fold.tallies.values() for off in _created_only(t)):
        fold.ids(reader.logs(label=label, state="CREATED", from_ms=since_ms), "CREATED")
    return fold.tallies, sample


def _created_only(t: Tally) -> Iterator[int]:
    return (off for off in range(t.start, t.end) if off in t.created)


def _sample(reader: LogReader, fold: _Fold, label: str, since_ms: int, max_records: int,
            rng: random.Random) -> dict[str, Any]:
    """Above ``max_records``: the messages in trouble were read exhaustively (their newest
    entries decide: an ERROR followed by DELIVERED is delivered), then delivered entries for
    random time windows until ``max_records`` are read."""
    for t in fold.tallies.values():
        t.sampled = OffsetBits(t.start, t.end)
    suspects = sorted({mid for t in fold.tallies.values()
                       for mid in [*(m for m, _s in t.retrying.values()), *t.cancelled.values(),
                                   *(m for m, _s in t.failed.values())]})
    delivered = (e for e in reader.logs_of(suspects) if str(e.get("state")).upper() == "DELIVERED")
    fold.delivered(delivered, sample=True)
    skip = frozenset(suspects)
    t0, t1 = since_ms, int(time.time() * 1000)
    read = covered_ms = n_windows = 0
    for lo, hi in _windows(t0, t1, rng):
        read += fold.delivered(reader.logs(label=label, state="DELIVERED", from_ms=lo, to_ms=hi),
                               skip=skip, sample=True, budget=max_records - read)
        covered_ms += hi - lo + 1
        n_windows += 1
        if read >= max_records:
            break
    return {
        "max_records": max_records,
        "delivered_entries_read": read,
        "time_windows": f"{n_windows} of {_WINDOWS} random windows "
                        f"({100 * covered_ms / max(1, t1 - t0):.1f}% of the time since the hand-off)",
        "proves": "every message QStash failed (DLQ), cancelled or had to retry (read "
                  "exhaustively by state); for sampled records: delivered, once in the "
                  "windows read, and (--deep) the body",
        "does_not_prove": "that records outside the sample were delivered (reported "
                          "not_sampled), nor a second delivery of a record outside the windows "
                          "read; messages QStash queued but never attempted, or delivering for "
                          "the first time right now, are seen only in the sample",
    }
