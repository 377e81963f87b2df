"""The Kafka side of a verify: one streamed read of the range, kept as bitmaps per partition.

What verify needs of each record is a few facts: it exists (offsets of a compacted topic or of
transaction markers do not), it is a tombstone, it is older than QStash's log retention, and
(``--deep``) the SHA-256 of the body the route makes of it. The first three are one bit per
offset; the digest is kept as its first 8 bytes (an ``array`` of 64-bit integers: 8 bytes per
record, only with ``--deep``). Records the route cannot encode are listed (they are problems).
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field

from migrator.bridge.config import Route
from migrator.config import KafkaConnection
from migrator.cutover.offset_bits import OffsetBits
from migrator.cutover.records import read_range

__all__ = ["KafkaPartition", "digest_prefix", "read_kafka"]

Partition = tuple[str, int]


def digest_prefix(hex_digest: str) -> int:
    """The first 8 bytes of a SHA-256 (hex) as an integer: what ``--deep`` compares."""
    return int(hex_digest[:16], 16)


@dataclass
class KafkaPartition:
    """What the records of ``[start, end)`` of one partition say."""

    start: int
    end: int
    present: OffsetBits = field(init=False)
    tombstones: OffsetBits = field(init=False)
    old: OffsetBits = field(init=False)  # older than QStash's log retention
    digests: array[int] | None = None  # --deep: digest prefix per offset (start-relative)
    digested: OffsetBits | None = None  # --deep: offsets whose digest is known
    undecodable: dict[int, str] = field(default_factory=dict)
    records: int = 0

    def __post_init__(self) -> None:
        self.present = OffsetBits(self.start, self.end)
        self.tombstones = OffsetBits(self.start, self.end)
        self.old = OffsetBits(self.start, self.end)

    def digest(self, offset: int) -> int | None:
        if self.digests is None or self.digested is None or offset not in self.digested:
            return None
        return self.digests[offset - self.start]


def read_kafka(connection: KafkaConnection, ranges: Mapping[Partition, tuple[int, int]],
               routes: Mapping[str, Route], *, deep: bool,
               retention_from_ms: int) -> dict[Partition, KafkaPartition]:
    """Read every record of ``ranges`` once, keeping only the bits above per offset."""
    from migrator.bridge.routes import _codec

    out: dict[Partition, KafkaPartition] = {}
    for tp, (start, end) in ranges.items():
        kp = out[tp] = KafkaPartition(start, end)
        if deep:
            kp.digests = array("Q", bytes(8 * (end - start)))
            kp.digested = OffsetBits(start, end)
    codecs = {t: _codec(r, None) for t, r in routes.items()} if deep else {}
    empty = digest_prefix(hashlib.sha256(b"").hexdigest())
    for rec in read_range(connection, ranges):
        kp = out[(rec.topic, rec.partition)]
        off = rec.offset
        kp.records += 1
        kp.present.add(off)
        if rec.timestamp is not None and rec.timestamp < retention_from_ms:
            kp.old.add(off)
        if rec.value is None:
            kp.tombstones.add(off)
            body: bytes | None = b""
        elif deep:
            try:
                body, _ctype = codecs[rec.topic].encode(rec)
            except Exception as exc:  # an undecodable record: the bridge dead-letters it
                kp.undecodable[off] = str(exc)[:200]
                body = None
        else:
            body = None
        if deep and body is not None and kp.digests is not None and kp.digested is not None:
            kp.digests[off - kp.start] = (empty if not body else
                                          digest_prefix(hashlib.sha256(body).hexdigest()))
            kp.digested.add(off)
    return out
