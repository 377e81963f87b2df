from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import fastavro
import pytest

from connectors.codecs import BytesCodec, SchemaRegistryCodec, to_json
from connectors.sink import Record
from migrator.errors import PermanentDeliveryError

SCHEMA = {
    "type": "record", "name": "R", "fields": [
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 20,
                                    "scale": 4}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "blob", "type": "bytes"},
    ]}


def framed(schema_id: int, value: dict[str, object]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(SCHEMA), value)
    return b"\x00" + schema_id.to_bytes(4, "big") + buf.getvalue()


def rec(value: bytes | None, headers: list[tuple[str, bytes | None]] | None = None) -> Record:
    return Record("t", 0, 7, None, value, headers or [], None)


def test_to_json_keeps_decimals_exact() -> None:
    big = Decimal("12345678901234567890.1234")
    assert to_json({"a": big}) == '{"a":12345678901234567890.1234}'
    assert to_json({"a": big}, "string") == '{"a":"12345678901234567890.1234"}'
    assert to_json([Decimal("1E+3"), Decimal("NaN")]) == '[1000,"NaN"]'
    assert json.loads(to_json({"d": date(2026, 1, 2), "u": UUID(int=1), "b": b"\x00"})) == {
        "d": "2026-01-02", "u": "00000000-0000-0000-0000-000000000001", "b": "AA=="}


def test_schema_registry_avro_to_json() -> None:
    lookups: list[int] = []

    def lookup(schema_id: int) -> tuple[str, str]:
        lookups.append(schema_id)
        return "AVRO", json.dumps(SCHEMA)

    codec = SchemaRegistryCodec(lookup, decimal="number")
    value = {"price": Decimal("-3.1400"), "at": datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
             "id": "2f1c6b8e-7d3c-4a35-9a8e-5e7a3f1b2c3d", "blob": b"\x01"}
    body, ctype = codec.encode(rec(framed(42, value)))
    assert ctype == "application/json"
    assert body == (b'{"price":-3.1400,"at":"2026-05-06T07:08:09.123456Z",'
                    b'"id":"2f1c6b8e-7d3c-4a35-9a8e-5e7a3f1b2c3d","blob":"AQ=="}')
    codec.encode(rec(framed(42, value)))
    assert lookups == [42]  # parsed schemas are cached


def test_undecodable_values_are_permanent_errors() -> None:
    codec = SchemaRegistryCodec(lambda _id: ("AVRO", json.dumps(SCHEMA)))
    with pytest.raises(PermanentDeliveryError, match="not Schema-Registry framed"):
        codec.encode(rec(b"plain text"))
    with pytest.raises(PermanentDeliveryError, match="does not match schema id 3"):
        codec.encode(rec(b"\x00\x00\x00\x00\x03\xff"))

    def missing(_id: int) -> tuple[str, str]:
        raise KeyError("schema 9 not found")

    with pytest.raises(PermanentDeliveryError, match="could not be fetched"):
        SchemaRegistryCodec(missing).encode(rec(b"\x00\x00\x00\x00\x09abc"))
    js = SchemaRegistryCodec(lambda _id: ("JSON", "{}"))
    assert js.encode(rec(b'\x00\x00\x00\x00\x01{"a":1}')) == (b'{"a":1}', "application/json")
    with pytest.raises(PermanentDeliveryError):
        js.encode(rec(b"\x00\x00\x00\x00\x01{nope"))


def test_bytes_codec_passes_through_with_content_type_header() -> None:
    assert BytesCodec().encode(rec(b"\x00\x01")) == (b"\x00\x01", "application/octet-stream")
    got = BytesCodec().encode(rec(b"{}", [("Content-Type", b"application/json")]))
    assert got == (b"{}", "application/json")


def test_protobuf_with_timestamp_decimal_enum_to_json() -> None:
    import base64

    from tests.connectors.proto_helpers import EXPECTED, payment, payment_class

    cls = payment_class("unit_pay")
    fdp_b64 = base64.b64encode(cls.DESCRIPTOR.file.serialized_pb).decode()
    codec = SchemaRegistryCodec(lambda _id: ("PROTOBUF", fdp_b64))
    framed_value = b"\x00\x00\x00\x00\x07" + b"\x00" + payment(cls).SerializeToString()
    body, ctype = codec.encode(rec(framed_value))
    assert ctype == "application/json"
    assert body.decode() == EXPECTED % "1234567890.12"
    as_text = SchemaRegistryCodec(lambda _id: ("PROTOBUF", fdp_b64), decimal="string")
    assert as_text.encode(rec(framed_value))[0].decode() == EXPECTED % '"1234567890.12"'
    proto_text = SchemaRegistryCodec(lambda _id: ("PROTOBUF", 'syntax = "proto3";'))
    with pytest.raises(PermanentDeliveryError, match="not a serialized descriptor"):
        proto_text.encode(rec(framed_value))
