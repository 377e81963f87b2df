"""Read a bounded sample of records by partition assignment: no group membership, no commits.

librdkafka insists on a ``group.id`` even for assign-only consumers; the sampler gives it a random
one but never subscribes, never fetches or commits offsets (explicit start offsets, auto commit and
offset store off), so the broker's group coordinator is never contacted and no group appears.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from migrator.config import KafkaConnection
from migrator.kafka.access import AccessDenied, denial_for
from migrator.kafka.answers import map_kafka_error
from migrator.kafka.client_log import librdkafka_logger
from migrator.kafka.errors import authorization_resource, is_authentication_error

__all__ = ["PartitionRange", "SampledRecord", "plan_ranges", "read_records"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionRange:
    """Read offsets [start, end) of one partition."""

    topic: str
    partition: int
    start: int
    end: int


@dataclass(frozen=True)
class SampledRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]

    @property
    def size(self) -> int:
        """Bytes a destination would receive: key, value, header names and values."""
        size = len(self.key or b"") + len(self.value or b"")
        for name, value in self.headers:
            size += len(name.encode()) + len(value or b"")
        return size


def plan_ranges(
    watermarks: Mapping[tuple[str, int], tuple[int, int]], per_topic: int
) -> list[PartitionRange]:
    """The newest ``per_topic`` records of each topic, spread evenly over its non-empty partitions."""
    by_topic: dict[str, list[tuple[int, int, int]]] = {}
    for (topic, partition), (low, high) in watermarks.items():
        if high > low:
            by_topic.setdefault(topic, []).append((partition, low, high))
    ranges: list[PartitionRange] = []
    if per_topic <= 0:
        return ranges
    for topic, parts in sorted(by_topic.items()):
        parts.sort()
        remaining = per_topic
        # Give each partition an equal share; leftover share moves to partitions with more data.
        pending = list(parts)
        quota: dict[int, int] = {p: 0 for p, _, _ in parts}
        while remaining > 0 and pending:
            share = max(1, remaining // len(pending))
            still: list[tuple[int, int, int]] = []
            for partition, low, high in pending:
                if remaining <= 0:
                    break
                available = high - low - quota[partition]
                take = min(share, available, remaining)
                quota[partition] += take
                remaining -= take
                if high - low - quota[partition] > 0:
                    still.append((partition, low, high))
            pending = still
        for partition, _low, high in parts:
            if quota[partition] > 0:
                ranges.append(PartitionRange(topic, partition, high - quota[partition], high))
    return ranges


def read_records(
    connection: KafkaConnection,
    ranges: Sequence[PartitionRange],
    *,
    timeout: float,
    on_denied: Callable[[AccessDenied], None] | None = None,
) -> Iterator[SampledRecord]:
    """Yield the records in ``ranges`` (gaps from compaction or transactions are skipped).

    Stops when every range is read or ``timeout`` seconds have passed (whatever was read by then
    is what the sample holds). A topic the principal may not Read is reported to ``on_denied``
    (once) and its partitions dropped; without ``on_denied`` it ends the read with an error.
    """
    if not ranges:
        return
    conf: dict[str, object] = dict(connection.to_librdkafka())
    conf.update(
        {
            "group.id": f"migrator-audit-sampler-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "client.id": "migrator-audit-sampler",
            "logger": librdkafka_logger(),
            "error_cb": lambda err: log.debug("sampler: %s", err),
        }
    )
    # Bound the prefetch so sampling big records on many partitions stays within a small RSS
    # (a record larger than fetch.max.bytes is still returned whole); -X settings win.
    conf.setdefault("queued.max.messages.kbytes", 16384)
    conf.setdefault("fetch.max.bytes", 16 * 1024 * 1024)
    consumer = Consumer(conf)
    end = {(r.topic, r.partition): r.end for r in ranges}
    try:
        consumer.assign([TopicPartition(r.topic, r.partition, r.start) for r in ranges])
        deadline = time.monotonic() + timeout
        open_ranges = set(end)
        paused: set[tuple[str, int]] = set()
        while open_ranges and time.monotonic() < deadline:
            batch = consumer.consume(num_messages=500, timeout=0.5)
            for msg in batch:
                key = (msg.topic() or "", msg.partition() or 0)
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        open_ranges.discard(key)
                        continue
                    denial = denial_for(err.code(), operation="Read",
                                        what="sampling its records", topic=msg.topic())
                    if denial is not None and denial.resource == "topic" \
                            and on_denied is not None and msg.topic():
                        dropped = [k for k in end if k[0] == msg.topic() and k not in paused]
                        if any(k in open_ranges for k in dropped):
                            on_denied(denial)
                        open_ranges.difference_update(dropped)
                        if dropped:
                            consumer.pause([TopicPartition(t, p) for t, p in dropped])
                            paused.update(dropped)
                        continue
                    # the sampler's group is throwaway (assign, no commits): a group refusal
                    # does not stop it, refused credentials or topic reads do
                    if is_authentication_error(err.code()) \
                            or authorization_resource(err.code()) == "topic":
                        raise map_kafka_error(err, "a record read", connection.bootstrap_servers)
                    log.debug("sampler: %s", err)
                    continue
                offset = msg.offset() or 0
                if key not in open_ranges:
                    continue
                if offset >= end[key]:
                    open_ranges.discard(key)
                    continue
                if offset + 1 >= end[key]:
                    open_ranges.discard(key)
                yield SampledRecord(
                    topic=key[0],
                    partition=key[1],
                    offset=offset,
                    key=_as_bytes(msg.key()),
                    value=_as_bytes(msg.value()),
                    headers=_headers(msg.headers()),
                )
            done = [k for k in end if k not in open_ranges and k not in paused]
            if done and open_ranges:
                consumer.pause([TopicPartition(t, p) for (t, p) in done])
                paused.update(done)
        if open_ranges:
            log.info("sampling stopped after %.0f s with %d partitions unread", timeout,
                     len(open_ranges))
    finally:
        consumer.close()


def _as_bytes(data: str | bytes | None) -> bytes | None:
    if data is None or isinstance(data, bytes):
        return data
    return data.encode()


def _headers(raw: Any) -> tuple[tuple[str, bytes | None], ...]:
    if not raw:
        return ()
    items = raw.items() if isinstance(raw, dict) else raw
    return tuple((str(name), _as_bytes(value)) for name, value in items)
