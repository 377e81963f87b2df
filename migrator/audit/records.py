"""What a sample of records says about a topic: sizes, keys, headers, tombstones, value format.

Pure logic: :class:`RecordStats` folds records one at a time (memory is one int per record for
the size percentiles), and :func:`detect_format` classifies one value. Schema-Registry framing is
magic byte 0 followed by a 4-byte big-endian schema id; the id's type and subjects come from the
registry when it answers (see :mod:`migrator.audit.registry`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from migrator.inventory import RecordSample

__all__ = ["FRAMED", "RecordStats", "SchemaRef", "detect_format", "framed_schema_id"]

FRAMED = "framed"  # Schema-Registry framed, type not known (registry unavailable)

_SCHEMA_FORMATS = {"AVRO": "avro", "JSON": "json_schema", "PROTOBUF": "protobuf"}


@dataclass(frozen=True)
class SchemaRef:
    """What the registry says about a schema id."""

    schema_type: str
    subjects: tuple[str, ...] = ()


def framed_schema_id(value: bytes) -> int | None:
    """The schema id of a Schema-Registry framed payload (magic byte 0 + 4-byte id), else None."""
    if len(value) >= 5 and value[0] == 0:
        return int.from_bytes(value[1:5], "big")
    return None


def detect_format(value: bytes | None) -> str:
    """'empty', 'framed', 'json', 'text' or 'binary' for one record value (tombstone -> 'empty')."""
    if not value:
        return "empty"
    if framed_schema_id(value) is not None:
        return FRAMED
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            json.loads(text)
        except ValueError:
            pass
        else:
            return "json"
    if all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return "text"
    return "binary"


def _percentile(sorted_sizes: list[int], q: float) -> int:
    """Nearest-rank percentile (q in 0..100) of a sorted list."""
    if not sorted_sizes:
        return 0
    rank = max(1, -(-len(sorted_sizes) * q // 100))  # ceil
    return sorted_sizes[int(rank) - 1]


@dataclass
class RecordStats:
    """Accumulates a topic's sample; :meth:`result` turns it into a RecordSample."""

    sizes: list[int] = field(default_factory=list)
    keyed: int = 0
    tombstones: int = 0
    headers: set[str] = field(default_factory=set)
    formats: Counter[str] = field(default_factory=Counter)
    schema_ids: Counter[int] = field(default_factory=Counter)

    def add(
        self,
        *,
        size: int,
        key: bytes | None,
        value: bytes | None,
        header_names: list[str] | tuple[str, ...] = (),
    ) -> None:
        self.sizes.append(size)
        if key is not None:
            self.keyed += 1
        self.headers.update(header_names)
        if value is None:
            self.tombstones += 1
            return
        fmt = detect_format(value)
        if fmt == FRAMED:
            schema_id = framed_schema_id(value)
            assert schema_id is not None
            self.schema_ids[schema_id] += 1
        self.formats[fmt] += 1

    def result(
        self, schemas: Mapping[int, SchemaRef] | None = None, *, topic: str | None = None
    ) -> RecordSample:
        """The sample; framed values are typed by their schema id when ``schemas`` knows it.

        A registry may share one id between subjects (same content); when some of them are the
        topic's own (``<topic>-value`` / ``<topic>-key``), only those are reported.
        """
        schemas = schemas or {}
        formats: Counter[str] = Counter(
            {k: v for k, v in self.formats.items() if k != FRAMED}
        )
        subjects: set[str] = set()
        for schema_id, count in self.schema_ids.items():
            ref = schemas.get(schema_id)
            if ref is None:
                formats["unknown"] += count
                continue
            formats[_SCHEMA_FORMATS.get(ref.schema_type.upper(), "unknown")] += count
            subjects.update(ref.subjects)
        if topic is not None:
            own = {s for s in subjects if s in (f"{topic}-value", f"{topic}-key")}
            subjects = own or subjects
        sizes = sorted(self.sizes)
        sampled = len(sizes)
        value_format = "unknown"
        if formats:
            value_format = max(sorted(formats), key=lambda k: formats[k])
        elif sampled and self.tombstones == sampled:
            value_format = "empty"
        return RecordSample(
            sampled=sampled,
            size_p50=_percentile(sizes, 50),
            size_p95=_percentile(sizes, 95),
            size_p99=_percentile(sizes, 99),
            size_max=sizes[-1] if sizes else 0,
            keyed_ratio=round(self.keyed / sampled, 4) if sampled else 0.0,
            tombstones=self.tombstones,
            header_names=sorted(self.headers),
            value_format=value_format,
            formats=dict(sorted(formats.items())),
            schema_ids=sorted(self.schema_ids),
            subjects=sorted(subjects),
        )
