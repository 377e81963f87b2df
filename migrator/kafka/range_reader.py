"""Reading a fixed range of offsets from partitions, outside any consumer group (what
``migrator cutover verify`` compares QStash's outcomes with)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import NamedTuple

from confluent_kafka import Consumer, KafkaError, TopicPartition

from migrator.config import KafkaConnection
from migrator.errors import KafkaUnavailableError

__all__ = ["RangeRecord", "read_range"]

Partition = tuple[str, int]


class RangeRecord(NamedTuple):
    """One record read from a range (the fields of ``connectors.sink.Record``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp: int | None


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
               timeout: float = 60.0) -> Iterator[RangeRecord]:
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
                yield RangeRecord(topic=tp[0], partition=tp[1], offset=offset, key=m.key(),
                             value=m.value(), headers=_headers(m.headers()),
                             timestamp=ts if ts_type else None)
                if offset + 1 >= end:
                    remaining.discard(tp)
    finally:
        consumer.close()
