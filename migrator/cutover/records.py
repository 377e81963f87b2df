"""Read exact offset ranges of Kafka partitions, and the bridge's dead letters for a range.

A reader assigned to the partitions (no group, no commits) reads ``[start, end)`` of each and
yields the records one by one (no buffering beyond librdkafka's), so a verify of a large range
does not hold the records in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from connectors.sink import Record
from migrator.config import KafkaConnection
from migrator.kafka.admin import KafkaAdmin
from migrator.kafka.range_reader import read_range as kafka_read_range

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


def read_range(connection: KafkaConnection, ranges: Mapping[Partition, tuple[int, int]], *,
               timeout: float = 60.0) -> Iterator[Record]:
    """Every record at ``start <= offset < end`` of each partition (see
    :func:`migrator.kafka.range_reader.read_range`), as the bridge's ``Record``."""
    for raw in kafka_read_range(connection, ranges, timeout=timeout):
        yield Record(**raw._asdict())


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
