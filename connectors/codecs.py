"""Payload codecs: a Kafka record's value becomes an HTTP body.

* :class:`BytesCodec` passes the value through unchanged (``Content-Type`` from a record header
  named ``content-type`` when present, else ``application/octet-stream``).
* :class:`SchemaRegistryCodec` decodes Confluent-framed values (magic byte 0, 4-byte schema id)
  to JSON: Avro through fastavro, with logical types rendered as JSON users expect (decimals as
  numbers or strings, never base64; timestamps and dates in ISO 8601; UUIDs as strings), and
  JSON Schema payloads passed through after checking they are JSON, and Protobuf decoded from
  the registry's serialized ``FileDescriptorProto`` (``google.protobuf.Timestamp`` as ISO 8601,
  ``google.type.Decimal`` / ``confluent.type.Decimal`` as exact decimals, enums by name,
  ``google.type.Date`` as a date). A Protobuf schema that imports other user schemas (registry
  references) is resolved: the lookup returns the referenced files, dependencies first, and the
  codec builds one descriptor pool from them.

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
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Literal, Protocol

import fastavro

from connectors.sink import Record
from migrator.errors import PermanentDeliveryError, RetryableDeliveryError

__all__ = [
    "BytesCodec",
    "Codec",
    "ProtoReferences",
    "SchemaLookup",
    "SchemaRegistryCodec",
    "registry_lookup",
    "to_json",
]

JSON_TYPE = "application/json"
REGISTRY_TIMEOUT = 10.0  # seconds per Schema Registry request (then retried, then an error)


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

ProtoReferences = Sequence[tuple[str, str]]
"""A Protobuf schema's referenced files, dependencies first, each once: (import name as the
referencing file spells it, base64 ``FileDescriptorProto``)."""

SchemaLookup = Callable[[int], tuple[str, str] | tuple[str, str, ProtoReferences]]
"""schema id -> (schema type AVRO|JSON|PROTOBUF, schema text[, Protobuf references]).

A Protobuf schema's text is a base64 ``FileDescriptorProto``; the optional third item holds the
files it imports (transitively), which a lookup may omit when there are none."""


def registry_lookup(url: str, conf: dict[str, str] | None = None) -> SchemaLookup:
    """A lookup backed by confluent-kafka's SchemaRegistryClient (which caches by id).

    Protobuf schemas come back as base64 ``FileDescriptorProto``: the stored text when it already
    is one (what confluent-kafka's ProtobufSerializer registers), else the registry's
    ``format=serialized`` rendering. Their references are followed recursively by subject and
    version. A reference the registry does not have, or a cycle, is a PermanentDeliveryError
    naming the schema id and the reference.
    """
    from confluent_kafka.schema_registry import SchemaRegistryClient

    # confluent-kafka's client waits for an answer forever unless told otherwise; a request
    # that times out is retried on a new connection (max.retries)
    client = SchemaRegistryClient({"url": url, "timeout": REGISTRY_TIMEOUT, **(conf or {})})
    # The client caches by id and by subject/version whatever the format asked for, so the
    # serialized renderings come from a client of their own.
    serialized = SchemaRegistryClient({"url": url, "timeout": REGISTRY_TIMEOUT, **(conf or {})})

    def lookup(schema_id: int) -> tuple[str, str] | tuple[str, str, ProtoReferences]:
        schema = client.get_schema(schema_id)
        kind = (schema.schema_type or "AVRO").upper()
        if kind != "PROTOBUF":
            return kind, schema.schema_str or ""
        what = f"PROTOBUF schema id {schema_id}"
        text = _descriptor_text(
            schema.schema_str,
            lambda: serialized.get_schema(schema_id, fmt="serialized").schema_str,
            what,
        )
        files: dict[str, str] = {}
        _resolve_references(client, serialized, schema.references or [], schema_id, (), files)
        return kind, text, list(files.items())

    return lookup


def _resolve_references(
    client: Any,
    serialized: Any,
    references: Sequence[Any],
    schema_id: int,
    chain: tuple[str, ...],
    files: dict[str, str],
) -> None:
    """Add ``references`` (and theirs, first) to ``files``: import name -> base64 descriptor."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    for ref in references:
        name, subject, version = ref.name, ref.subject, ref.version
        if not name or _builtin_proto(name):
            continue  # the codec's pool already holds the well-known and logical types
        step = f"{name!r} (subject {subject!r} version {version})"
        if step in chain:
            path = " -> ".join([*chain, step])
            raise PermanentDeliveryError(
                f"PROTOBUF schema id {schema_id}: its references form a cycle ({path}); "
                "fix the references in the registry or decode this topic as bytes"
            )
        if name in files:
            continue
        if not subject or version is None:
            raise PermanentDeliveryError(
                f"PROTOBUF schema id {schema_id}: reference {name!r} has no subject or version"
            )
        try:
            found = client.get_version(subject, version)
        except SchemaRegistryError as exc:
            raise PermanentDeliveryError(
                f"PROTOBUF schema id {schema_id}: reference {step} is missing from the registry "
                f"({exc}); register it or decode this topic as bytes"
            ) from None
        what = f"PROTOBUF schema id {schema_id}: reference {step}"

        def fetch(subject: str = subject, version: int = version) -> str | None:
            rendered = serialized.get_version(subject, version, fmt="serialized")
            answer: str | None = rendered.schema.schema_str
            return answer

        text = _descriptor_text(found.schema.schema_str, fetch, what)
        _resolve_references(
            client, serialized, found.schema.references or [], schema_id, (*chain, step), files
        )
        files[name] = text


def _descriptor_text(
    stored: str | None, fetch_serialized: Callable[[], str | None], what: str
) -> str:
    """A base64 ``FileDescriptorProto`` for a Protobuf schema: ``stored`` when it is one, else
    the registry's ``format=serialized`` answer (base64 from Confluent; Apicurio 3 sends the raw
    bytes as a JSON string, intact only when it holds no U+FFFD replacement character)."""
    if stored and _parse_descriptor_b64(stored) is not None:
        return stored
    try:
        answer = fetch_serialized() or ""
    except Exception as exc:
        raise PermanentDeliveryError(
            f"{what}: the registry cannot render it as a serialized descriptor ({exc}); "
            "register it with confluent-kafka's ProtobufSerializer or decode this topic as bytes"
        ) from None
    if _parse_descriptor_b64(answer) is not None:
        return answer
    if "\ufffd" not in answer:
        try:
            raw = answer.encode("utf-8")
            _descriptor_proto(raw)
            return base64.b64encode(raw).decode("ascii")
        except Exception:
            pass
    raise PermanentDeliveryError(
        f"{what}: the registry returned no intact serialized descriptor for it (it stores .proto "
        "text, and the bridge has no .proto parser); register it with confluent-kafka's "
        "ProtobufSerializer or decode this topic as bytes"
    )


def _registry_outage(exc: BaseException) -> bool:
    """The registry did not answer, or answered 5xx/429: not the record's doing (an unknown
    schema id, 404, or a refused credential, 401/403, is). Network errors are recognised by
    name: confluent-kafka's registry client raises those of its own copy of httpx (httpx2)."""
    if isinstance(exc, (ConnectionError, TimeoutError)) or any(
        cls.__name__ in ("TransportError", "TimeoutException") for cls in type(exc).__mro__
    ):
        return True
    status = getattr(exc, "http_status_code", None)
    return isinstance(status, int) and (status >= 500 or status == 429)


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
            kind, text, *rest = self._lookup(schema_id)
        except PermanentDeliveryError as exc:
            raise PermanentDeliveryError(f"{where}: {exc}") from None
        except Exception as exc:
            message = f"{where}: schema id {schema_id} could not be fetched from the registry ({exc})"
            if _registry_outage(exc):  # says nothing about the record: hold it, ask again
                raise RetryableDeliveryError(message, outage=True) from None
            raise PermanentDeliveryError(message) from None
        try:
            if kind == "AVRO":
                parsed: Any = fastavro.parse_schema(json.loads(text))
            elif kind == "PROTOBUF":
                parsed = _proto_file(text, schema_id, rest[0] if rest else ())
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


def _builtin_proto(name: str) -> bool:
    """Files the codec's pool provides itself (the well-known and logical types)."""
    return name.startswith(("google/protobuf/", "google/type/", "confluent/"))


def _descriptor_proto(raw: bytes) -> Any:
    from google.protobuf import descriptor_pb2

    proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
    if not proto.message_type and not proto.enum_type and not proto.package:
        raise ValueError("not a FileDescriptorProto")
    return proto


def _parse_descriptor_b64(text: str) -> Any:
    """The FileDescriptorProto in base64 ``text``, or None when it is not one."""
    try:
        return _descriptor_proto(base64.b64decode(text, validate=True))
    except Exception:
        return None


def _proto_file(text: str, schema_id: int, references: ProtoReferences = ()) -> Any:
    """The FileDescriptor of a registry schema given as a base64 FileDescriptorProto, built in a
    pool with its referenced files (``references``, dependencies first)."""
    pool = _proto_pool()
    names = [name for name, _ in references]
    files: list[tuple[str, Any]] = []
    for name, ref_text in references:
        proto = _parse_descriptor_b64(ref_text)
        if proto is None:
            raise ValueError(f"its reference {name!r} is not a serialized descriptor")
        files.append((name, proto))
    main = _parse_descriptor_b64(text)
    if main is None:
        raise ValueError(
            "the registry returned .proto text, not a serialized descriptor "
            "(ask for format=serialized); decode this topic as bytes"
        )
    files.append((f"schema-{schema_id}.proto", main))
    added = None
    for name, proto in files:
        proto.name = name
        for i, dep in enumerate(proto.dependency):
            target = _import_target(pool, dep, names)
            if target is None:
                raise ValueError(
                    f"{'it' if name == files[-1][0] else repr(name)} imports {dep!r}, which is not "
                    "among the schema's registry references; register that file and reference "
                    "it, or decode this topic as bytes"
                )
            proto.dependency[i] = target
        added = pool.Add(proto)
    return added


def _import_target(pool: Any, dep: str, names: Sequence[str]) -> str | None:
    """The pool file an import names: a built-in, the reference of that name, or the only
    reference with the same base name (Apicurio's serialized descriptors rewrite import paths
    from the package, keeping the file's base name)."""
    if dep in names:
        return dep
    try:
        pool.FindFileByName(dep)
        return dep
    except KeyError:
        pass
    base = dep.rsplit("/", 1)[-1]
    same = [name for name in names if name.rsplit("/", 1)[-1] == base]
    return same[0] if len(same) == 1 else None


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
