"""Read exact offset ranges of Kafka partitions, and the bridge's dead letters for a range.

A reader assigned to the partitions (no group, no commits) reads ``[start, end)`` of each and
yields the records one by one (no buffering beyond librdkafka's), so a verify of a large range
does not hold the records in memory.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition

from connectors.sink import Record
from migrator.config import KafkaConnection
from migrator.errors import KafkaUnavailableError
from migrator.kafka.admin import KafkaAdmin

__all__ = ["DeadLetterSeen", "dead_letters", "read_range"]

Partition = tuple[str, int]


@dataclass(frozen=True)
class DeadLetterSeen:
    """A dead letter the bridge wrote for one source record."""

    reason: str
    route: str
    status: int | None
    error: str
    dead_letter_offset: int  # where it sits in the dead-letter topic (partition included below)
    dead_letter_partition: int


def _consumer(connection: KafkaConnection) -> Consumer:
    conf: dict[str, object] = {
        **connection.to_librdkafka(),
        "group.id": f"migrator-verify-{uuid.uuid4().hex[:12]}",  # never joined nor committed
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    }
    return Consumer(conf)


def _headers(raw: object) -> list[tuple[str, bytes | None]]:
    if not isinstance(raw, list):
        return []
    return [(str(k), v if isinstance(v, bytes) or v is None else str(v).encode())
            for k, v in raw]


def read_range(connection: KafkaConnection, ranges: Mapping[Partition, tuple[int, int]], *,
               timeout: float = 60.0) -> Iterator[Record]:
    """Every record at ``start <= offset < end`` of each partition (a record compacted or deleted
    away is simply not yielded). Raises KafkaUnavailableError when a partition does not reach
    its end within ``timeout`` seconds of silence."""
    wanted = {tp: (s, e) for tp, (s, e) in ranges.items() if e > s}
    if not wanted:
        return
    consumer = _consumer(connection)
    try:
        consumer.assign([TopicPartition(t, p, s) for (t, p), (s, _e) in wanted.items()])
        remaining = set(wanted)
        quiet_since = time.monotonic()
        while remaining:
            msgs = consumer.consume(500, 0.5)
            if not msgs:
                if time.monotonic() - quiet_since > timeout:
                    raise KafkaUnavailableError(
                        f"reading {sorted(remaining)} stalled for {timeout:g}s before the "
                        "verified range ended")
                continue
            quiet_since = time.monotonic()
            for m in msgs:
                err = m.error()
                tp = (m.topic() or "", m.partition() or 0)
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        # the log ends below the range's end (records deleted): nothing more
                        remaining.discard(tp)
                        continue
                    raise KafkaUnavailableError(f"reading {tp[0]}[{tp[1]}]: {err.str()}")
                if tp not in remaining:
                    continue
                offset = m.offset() or 0
                _start, end = wanted[tp]
                if offset >= end:
                    remaining.discard(tp)
                    continue
                ts_type, ts = m.timestamp()
                yield Record(topic=tp[0], partition=tp[1], offset=offset, key=m.key(),
                             value=m.value(), headers=_headers(m.headers()),
                             timestamp=ts if ts_type else None)
                if offset + 1 >= end:
                    remaining.discard(tp)
    finally:
        consumer.close()


def dead_letters(connection: KafkaConnection, admin: KafkaAdmin, topic: str,
                 ranges: Mapping[Partition, tuple[int, int]], routes: set[str], *,
                 since_ms: int, timeout: float = 60.0,
                 ) -> dict[tuple[str, int, int], DeadLetterSeen]:
    """Dead letters written to ``topic`` since ``since_ms`` for records in ``ranges`` by one of
    ``routes``, keyed by the source record's coordinates."""
    found = admin.describe_topics([topic]).get(topic)
    if found is None:
        return {}
    partitions = [p.partition for p in found.partitions]
    starts = admin.list_offsets([(topic, p) for p in partitions], since_ms)
    last = admin.list_offsets([(topic, p) for p in partitions], "latest")
    ends = {p: last.get((topic, p), 0) for p in partitions}
    scan = {(topic, p): (starts[(topic, p)] if starts.get((topic, p), -1) >= 0 else ends[p],
                         ends[p]) for p in partitions}
    out: dict[tuple[str, int, int], DeadLetterSeen] = {}
    for rec in read_range(connection, scan, timeout=timeout):
        h = {k: (v or b"").decode("utf-8", "replace") for k, v in rec.headers}
        if h.get("dead-letter-route") not in routes:
            continue
        try:
            coord = (h["dead-letter-source-topic"], int(h["dead-letter-source-partition"]),
                     int(h["dead-letter-source-offset"]))
        except (KeyError, ValueError):
            continue
        span = ranges.get(coord[:2])
        if span is None or not span[0] <= coord[2] < span[1]:
            continue
        status = h.get("dead-letter-status")
        out[coord] = DeadLetterSeen(
            reason=h.get("dead-letter-reason", "?"), route=h["dead-letter-route"],
            status=int(status) if status and status.isdigit() else None,
            error=h.get("dead-letter-error", ""), dead_letter_offset=rec.offset,
            dead_letter_partition=rec.partition)
    return out
