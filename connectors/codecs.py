"""Payload codecs: a Kafka record's value becomes an HTTP body.

* :class:`BytesCodec` passes the value through unchanged (``Content-Type`` from a record header
  named ``content-type`` when present, else ``application/octet-stream``).
* :class:`SchemaRegistryCodec` decodes Confluent-framed values (magic byte 0, 4-byte schema id)
  to JSON: Avro through fastavro, with logical types rendered as JSON users expect (decimals as
  numbers or strings, never base64; timestamps and dates in ISO 8601; UUIDs as strings), and
  JSON Schema payloads passed through after checking they are JSON. Protobuf-framed values are
  refused as undecodable (see docs/bridge.md: not implemented).

A value that cannot be decoded raises :class:`~migrator.errors.PermanentDeliveryError`, which the
bridge dead-letters.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal, Protocol

import fastavro

from connectors.sink import Record
from migrator.errors import PermanentDeliveryError

__all__ = ["BytesCodec", "Codec", "SchemaRegistryCodec", "to_json"]

JSON_TYPE = "application/json"


class Codec(Protocol):
    def encode(self, record: Record) -> tuple[bytes, str]:
        """(body, content type) for ``record``; PermanentDeliveryError when undecodable."""
        ...


class BytesCodec:
    """Pass the value through."""

    def encode(self, record: Record) -> tuple[bytes, str]:
        content_type = "application/octet-stream"
        for name, value in record.headers:
            if name.lower() == "content-type" and value:
                content_type = value.decode("latin-1")
        return record.value or b"", content_type


# -- JSON rendering with exact decimals -----------------------------------------------------


def to_json(value: Any, decimal: Literal["number", "string"] = "number") -> str:
    """Compact JSON of decoded data: Decimal exact (number or string), datetimes ISO 8601."""
    parts: list[str] = []
    _emit(value, parts, decimal == "number")
    return "".join(parts)


def _iso(value: dt.datetime | dt.date | dt.time) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _emit(value: Any, out: list[str], decimal_number: bool) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(json.dumps(str(k)))
            out.append(":")
            _emit(v, out, decimal_number)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _emit(v, out, decimal_number)
        out.append("]")
    elif isinstance(value, Decimal):
        text = format(value, "f")
        out.append(text if decimal_number and value.is_finite() else json.dumps(text))
    elif isinstance(value, dt.datetime | dt.date | dt.time):
        out.append(json.dumps(_iso(value)))
    elif isinstance(value, uuid.UUID):
        out.append(json.dumps(str(value)))
    elif isinstance(value, bytes | bytearray):
        out.append(json.dumps(base64.b64encode(bytes(value)).decode("ascii")))
    else:
        out.append(json.dumps(value))


# -- Schema Registry ------------------------------------------------------------------------

SchemaLookup = Callable[[int], tuple[str, str]]
"""schema id -> (schema type AVRO|JSON|PROTOBUF, schema text)."""


def registry_lookup(url: str, conf: dict[str, str] | None = None) -> SchemaLookup:
    """A lookup backed by confluent-kafka's SchemaRegistryClient (which caches by id)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    client = SchemaRegistryClient({"url": url, **(conf or {})})

    def lookup(schema_id: int) -> tuple[str, str]:
        schema = client.get_schema(schema_id)
        return (schema.schema_type or "AVRO").upper(), schema.schema_str or ""

    return lookup


class SchemaRegistryCodec:
    """Decode Confluent wire-format values to JSON."""

    def __init__(
        self, lookup: SchemaLookup, *, decimal: Literal["number", "string"] = "number"
    ) -> None:
        self._lookup = lookup
        self._decimal = decimal
        self._parsed: dict[int, tuple[str, Any]] = {}
        self._lock = threading.Lock()

    def _schema(self, schema_id: int, where: str) -> tuple[str, Any]:
        with self._lock:
            hit = self._parsed.get(schema_id)
        if hit is not None:
            return hit
        try:
            kind, text = self._lookup(schema_id)
        except Exception as exc:  # registry down or id unknown: undecodable for now
            raise PermanentDeliveryError(
                f"{where}: schema id {schema_id} could not be fetched from the registry ({exc})"
            ) from None
        parsed: Any = fastavro.parse_schema(json.loads(text)) if kind == "AVRO" else text
        with self._lock:
            self._parsed[schema_id] = (kind, parsed)
        return kind, parsed

    def encode(self, record: Record) -> tuple[bytes, str]:
        where = f'partition="{record.topic}[{record.partition}]" offset={record.offset}'
        value = record.value
        if value is None:
            return b"", JSON_TYPE
        if len(value) < 5 or value[0] != 0:
            raise PermanentDeliveryError(
                f"{where}: value is not Schema-Registry framed (no magic byte 0); "
                "use payload mode `bytes` for this topic"
            )
        schema_id = int.from_bytes(value[1:5], "big")
        kind, schema = self._schema(schema_id, where)
        payload = value[5:]
        try:
            if kind == "AVRO":
                data = fastavro.schemaless_reader(io.BytesIO(payload), schema, None)
                return to_json(data, self._decimal).encode(), JSON_TYPE
            if kind == "JSON":
                json.loads(payload)
                return payload, JSON_TYPE
        except Exception as exc:
            raise PermanentDeliveryError(
                f"{where}: {kind} payload does not match schema id {schema_id} ({exc})"
            ) from None
        raise PermanentDeliveryError(
            f"{where}: {kind} values cannot be decoded by the bridge yet; use payload mode `bytes`"
        )
