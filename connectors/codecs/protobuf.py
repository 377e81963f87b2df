"""Protobuf values decoded with the registry's serialized ``FileDescriptorProto``.

A schema and the files it imports (its registry references, dependencies first) are built into
one descriptor pool that also holds the well-known and logical types
(``google.protobuf.Timestamp`` as ISO 8601, ``google.type.Decimal`` / ``confluent.type.Decimal``
as exact decimals, ``google.type.Date`` as a date); enums come out by name. A value starts with
Confluent's message-index array (zigzag varints) naming the message type within the file.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

__all__ = [
    "ProtoReferences",
    "builtin_proto",
    "descriptor_proto",
    "parse_descriptor_b64",
    "proto_decode",
    "proto_file",
]

ProtoReferences = Sequence[tuple[str, str]]
"""A Protobuf schema's referenced files, dependencies first, each once: (import name as the
referencing file spells it, base64 ``FileDescriptorProto``)."""


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
    from migrator.kafka.registry import confluent_decimal_descriptor

    confluent_decimal = confluent_decimal_descriptor()
    if confluent_decimal is not None:  # (older confluent-kafka: confluent.type.Decimal is unknown)
        pool.AddSerializedFile(confluent_decimal)
    return pool


def builtin_proto(name: str) -> bool:
    """Files the codec's pool provides itself (the well-known and logical types)."""
    return name.startswith(("google/protobuf/", "google/type/", "confluent/"))


def descriptor_proto(raw: bytes) -> Any:
    from google.protobuf import descriptor_pb2

    proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
    if not proto.message_type and not proto.enum_type and not proto.package:
        raise ValueError("not a FileDescriptorProto")
    return proto


def parse_descriptor_b64(text: str) -> Any:
    """The FileDescriptorProto in base64 ``text``, or None when it is not one."""
    try:
        return descriptor_proto(base64.b64decode(text, validate=True))
    except Exception:
        return None


def proto_file(text: str, schema_id: int, references: ProtoReferences = ()) -> Any:
    """The FileDescriptor of a registry schema given as a base64 FileDescriptorProto, built in a
    pool with its referenced files (``references``, dependencies first)."""
    pool = _proto_pool()
    names = [name for name, _ in references]
    files: list[tuple[str, Any]] = []
    for name, ref_text in references:
        proto = parse_descriptor_b64(ref_text)
        if proto is None:
            raise ValueError(f"its reference {name!r} is not a serialized descriptor")
        files.append((name, proto))
    main = parse_descriptor_b64(text)
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


def proto_decode(file: Any, payload: bytes) -> Any:
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
