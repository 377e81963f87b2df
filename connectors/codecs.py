"""Payload codecs: a Kafka record's value becomes an HTTP body.

* :class:`BytesCodec` passes the value through unchanged (``Content-Type`` from a record header
  named ``content-type`` when present, else ``application/octet-stream``).
* :class:`SchemaRegistryCodec` decodes Confluent-framed values (magic byte 0, 4-byte schema id)
  to JSON: Avro through fastavro, with logical types rendered as JSON users expect (decimals as
  numbers or strings, never base64; timestamps and dates in ISO 8601; UUIDs as strings), and
  JSON Schema payloads passed through after checking they are JSON, and Protobuf decoded from
  the registry's serialized ``FileDescriptorProto`` (``google.protobuf.Timestamp`` as ISO 8601,
  ``google.type.Decimal`` / ``confluent.type.Decimal`` as exact decimals, enums by name,
  ``google.type.Date`` as a date; schemas that import other user schemas are not resolved).

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
        kind = (schema.schema_type or "AVRO").upper()
        if kind == "PROTOBUF":  # a base64 FileDescriptorProto rather than .proto text
            schema = client.get_schema(schema_id, fmt="serialized")
        return kind, schema.schema_str or ""

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
        try:
            if kind == "AVRO":
                parsed: Any = fastavro.parse_schema(json.loads(text))
            elif kind == "PROTOBUF":
                parsed = _proto_file(text, schema_id)
            else:
                parsed = text
        except Exception as exc:
            raise PermanentDeliveryError(
                f"{where}: {kind} schema id {schema_id} cannot be used ({exc})"
            ) from None
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
            if kind == "PROTOBUF":
                data = _proto_decode(schema, payload)
                return to_json(data, self._decimal).encode(), JSON_TYPE
        except Exception as exc:
            raise PermanentDeliveryError(
                f"{where}: {kind} payload does not match schema id {schema_id} ({exc})"
            ) from None
        raise PermanentDeliveryError(
            f"{where}: {kind} values cannot be decoded by the bridge yet; use payload mode `bytes`"
        )


# -- Protobuf -------------------------------------------------------------------------------


def _proto_pool() -> Any:
    """A descriptor pool holding the well-known and logical types schemas may import."""
    from google.protobuf import (
        descriptor_pool,
        duration_pb2,
        struct_pb2,
        timestamp_pb2,
        wrappers_pb2,
    )
    from google.type import date_pb2, decimal_pb2  # type: ignore[import-untyped]

    pool = descriptor_pool.DescriptorPool()
    for module in (timestamp_pb2, duration_pb2, wrappers_pb2, struct_pb2, date_pb2, decimal_pb2):
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    try:
        from confluent_kafka.schema_registry.confluent.type import decimal_pb2 as confluent_decimal

        pool.AddSerializedFile(confluent_decimal.DESCRIPTOR.serialized_pb)
    except ImportError:  # older confluent-kafka: confluent.type.Decimal is unavailable
        pass
    return pool


def _proto_file(text: str, schema_id: int) -> Any:
    """The FileDescriptor of a registry schema given as a base64 FileDescriptorProto."""
    from google.protobuf import descriptor_pb2

    try:
        raw = base64.b64decode(text, validate=True)
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
    except Exception:
        raise ValueError(
            "the registry returned .proto text, not a serialized descriptor "
            "(ask for format=serialized); decode this topic as bytes"
        ) from None
    proto.name = f"schema-{schema_id}.proto"
    return _proto_pool().Add(proto)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated message-index varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos  # zigzag
        shift += 7


def _proto_decode(file: Any, payload: bytes) -> Any:
    """Read the message-index array, then the message; return plain Python values."""
    from google.protobuf import message_factory

    count, pos = _read_varint(payload, 0)
    indexes = [0]
    if count:
        indexes = []
        for _ in range(count):
            index, pos = _read_varint(payload, pos)
            indexes.append(index)
    desc = file.message_types_by_name[list(file.message_types_by_name)[indexes[0]]]
    for index in indexes[1:]:
        desc = desc.nested_types[index]
    msg = message_factory.GetMessageClass(desc)()
    msg.ParseFromString(payload[pos:])
    return _proto_value(msg)


def _proto_value(msg: Any) -> Any:
    from google.protobuf import json_format
    from google.protobuf.descriptor import FieldDescriptor

    name = msg.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        return msg.ToDatetime(tzinfo=dt.UTC)
    if name == "google.type.Decimal":
        return Decimal(msg.value)
    if name == "confluent.type.Decimal":
        unscaled = int.from_bytes(msg.value, "big", signed=True)
        return Decimal(unscaled).scaleb(-msg.scale)
    if name == "google.type.Date":
        return dt.date(msg.year, msg.month, msg.day) if msg.year else None
    if name.startswith("google.protobuf.") and name.endswith("Value") and name != (
        "google.protobuf.Value"
    ):
        return msg.value
    if name.startswith("google.protobuf."):
        return json_format.MessageToDict(msg)
    out: dict[str, Any] = {}
    for field in msg.DESCRIPTOR.fields:
        value = getattr(msg, field.name)
        repeated = getattr(field, "is_repeated", None)
        if repeated is None:  # protobuf < 5.29 has no is_repeated
            repeated = field.label == FieldDescriptor.LABEL_REPEATED
        if repeated:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                vfield = field.message_type.fields_by_name["value"]
                out[field.name] = {
                    str(k): _proto_scalar(vfield, v) for k, v in value.items()
                }
            else:
                out[field.name] = [_proto_scalar(field, v) for v in value]
        elif field.message_type is not None:
            out[field.name] = _proto_value(value) if msg.HasField(field.name) else None
        else:
            out[field.name] = _proto_scalar(field, value)
    return out


def _proto_scalar(field: Any, value: Any) -> Any:
    if field.message_type is not None:
        return _proto_value(value)
    if field.enum_type is not None:
        known = field.enum_type.values_by_number.get(value)
        return known.name if known is not None else value
    return value
