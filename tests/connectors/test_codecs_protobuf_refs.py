"""Protobuf schemas that import other registered schemas (registry references), end to end
against the real registry: registered by confluent-kafka's ProtobufSerializer, decoded by the
codec through ``registry_lookup``."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaReference
from confluent_kafka.serialization import MessageField, SerializationContext

from connectors.codecs import RegistryLookup, SchemaRegistryCodec, registry_lookup
from connectors.codecs.lookup import _resolve_references
from connectors.sink import Record
from migrator.errors import PermanentDeliveryError
from tests.connectors.proto_helpers import ORDER_JSON, order, order_class, order_files
from tests.fixtures.kafka import KafkaKit, unique


def rec(value: bytes) -> Record:
    return Record("orders", 0, 3, None, value, [], None)


def registry_url(kafka: KafkaKit) -> str:
    if not kafka.registry_url:
        pytest.skip("this estate has no Schema Registry")
    return kafka.registry_url


def serialize(kafka: KafkaKit, package: str) -> bytes:
    """An Order framed by the real ProtobufSerializer, which registers its imports as subjects."""
    ctx = SerializationContext(f"{package}-orders", MessageField.VALUE)
    cls = order_class(package)
    value: bytes = kafka.protobuf_serializer(cls)(order(cls), ctx)
    return value


Lookups = Callable[[str], RegistryLookup]


@pytest.fixture
def lookups() -> Iterator[Lookups]:
    """``registry_lookup`` whose lookups are closed after the test."""
    made: list[RegistryLookup] = []

    def make(url: str) -> RegistryLookup:
        made.append(registry_lookup(url))
        return made[-1]

    yield make
    for lookup in made:
        lookup.close()


def test_imported_messages_and_enums_decode_to_json(kafka: KafkaKit, lookups: Lookups) -> None:
    url = registry_url(kafka)
    package = unique("refs").replace("-", "_")
    value = serialize(kafka, package)
    schema_id = int.from_bytes(value[1:5], "big")

    kind, _text, *rest = lookups(url)(schema_id)
    assert kind == "PROTOBUF"
    # dependencies first, the diamond's shared file once, well-known imports left to the pool
    assert [name for name, _ in rest[0]] == [f"{package}/money.proto", f"{package}/common.proto"]

    body, ctype = SchemaRegistryCodec(lookups(url)).encode(rec(value))
    assert ctype == "application/json"
    assert body.decode() == ORDER_JSON
    as_text = SchemaRegistryCodec(lookups(url), decimal="string").encode(rec(value))[0]
    assert b'"amount":"99999999999999999999.99"' in as_text


def test_a_schema_registered_without_its_references_names_the_missing_import(
    kafka: KafkaKit, lookups: Lookups,
) -> None:
    url = registry_url(kafka)
    package = unique("norefs").replace("-", "_")
    serialize(kafka, package)  # registers money and common as subjects of their own
    order_fdp = order_files(package)[2]
    text = base64.b64encode(order_fdp.SerializeToString()).decode()
    registry = kafka.registry()
    money = registry.get_latest_version(f"{package}/money.proto")
    assert money.version is not None
    # order.proto imports common.proto too, but is registered referencing only money.proto
    schema_id = registry.register_schema(f"{package}-partial", Schema(
        text, "PROTOBUF", [_ref(f"{package}/money.proto", money.version)]))
    value = b"\x00" + schema_id.to_bytes(4, "big") + b"\x00" + order(
        order_class(package)).SerializeToString()
    with pytest.raises(PermanentDeliveryError) as err:
        SchemaRegistryCodec(lookups(url)).encode(rec(value))
    message = str(err.value)
    assert f"schema id {schema_id}" in message
    assert f"imports '{package}/common.proto', which is not among the schema's registry " \
        "references" in message
    assert message.startswith('partition="orders[0]" offset=3: ')


def _ref(name: str, version: int) -> Any:
    from confluent_kafka.schema_registry import SchemaReference

    return SchemaReference(name, name, version)


class _Registry:
    """Subjects -> (schema text, references), as SchemaRegistryClient.get_version returns them."""

    def __init__(self, subjects: dict[str, tuple[str, list[Any]]]) -> None:
        self.subjects = subjects

    def get_version(self, subject: str, version: int, fmt: str | None = None) -> Any:
        text, refs = self.subjects[subject]
        return SimpleNamespace(schema=SimpleNamespace(schema_str=text, references=refs))


def test_a_reference_missing_from_the_registry_is_named() -> None:
    # Apicurio refuses both a dangling reference and deleting a referenced subject (42206), so
    # this path is reachable only on a registry without that integrity: a fake one here.
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    class Gone(_Registry):
        def get_version(self, subject: str, version: int, fmt: str | None = None) -> Any:
            raise SchemaRegistryError(404, 40401, f"Subject '{subject}' not found.")

    with pytest.raises(PermanentDeliveryError, match=r"^PROTOBUF schema id 7: reference 'x/a.proto' "
                       r"\(subject 'a-value' version 2\) is missing from the registry \(.*not found"):
        _resolve_references(Gone({}), Gone({}), [SimpleNamespace(
            name="x/a.proto", subject="a-value", version=2)], 7, (), {})


def test_cyclic_references_are_a_clear_error() -> None:
    a, b = (base64.b64encode(p.SerializeToString()).decode() for p in order_files("cyc")[:2])
    registry = _Registry({"a.proto": (a, [_ref("b.proto", 1)]),
                          "b.proto": (b, [_ref("a.proto", 1)])})
    with pytest.raises(PermanentDeliveryError, match=r"schema id 5: its references form a cycle "
                       r"\('a.proto' .* -> 'b.proto' .* -> 'a.proto'"):
        _resolve_references(registry, registry, [_ref("a.proto", 1)], 5, (), {})


def test_a_custom_lookup_returns_the_referenced_files() -> None:
    cls = order_class("plain_lookup")
    fdp = base64.b64encode(cls.DESCRIPTOR.file.serialized_pb).decode()
    codec = SchemaRegistryCodec(lambda _id: ("PROTOBUF", fdp))
    value = b"\x00\x00\x00\x00\x09\x00" + order(cls).SerializeToString()
    with pytest.raises(PermanentDeliveryError, match=r"imports 'plain_lookup/common\.proto'"):
        codec.encode(rec(value))
    files = [(p.name, base64.b64encode(p.SerializeToString()).decode())
             for p in order_files("plain_lookup")[:2]]
    with_refs = SchemaRegistryCodec(lambda _id: ("PROTOBUF", fdp, files))
    assert with_refs.encode(rec(value))[0].decode() == ORDER_JSON


def test_proto_text_schemas_with_references(kafka: KafkaKit, lookups: Lookups) -> None:
    """Schemas registered as .proto text (as Java clients do): the bridge has no .proto parser,
    so it needs the registry's ``format=serialized``. Apicurio 3 answers with the raw descriptor
    bytes in a JSON string, decoded as UTF-8, so any byte >= 0x80 arrives as U+FFFD: small
    descriptors survive and decode, larger ones are refused with a clear reason."""
    url = registry_url(kafka)
    package = unique("txt").replace("-", "_")
    registry = kafka.registry()
    inner = (f'syntax = "proto3";\npackage {package}.inner;\n'
             "message Inner { string a = 1; }\nenum Color { RED = 0; BLUE = 1; }\n")
    registry.register_schema(f"{package}-inner", Schema(inner, "PROTOBUF"))
    outer = (f'syntax = "proto3";\npackage {package};\nimport "{package}/inner.proto";\n'
             f"message Outer {{ {package}.inner.Inner inner = 1; {package}.inner.Color c = 2; }}\n")
    small = registry.register_schema(f"{package}-outer", Schema(outer, "PROTOBUF", [
        SchemaReference(f"{package}/inner.proto", f"{package}-inner", 1)]))
    payload = b"\x00" + b"\x0a\x03\x0a\x01x" + b"\x10\x01"  # Outer{inner{a:"x"}, c:BLUE}
    value = b"\x00" + small.to_bytes(4, "big") + payload
    body, _ = SchemaRegistryCodec(lookups(url)).encode(rec(value))
    assert body == b'{"inner":{"a":"x"},"c":"BLUE"}'

    fields = " ".join(f"string a_rather_long_field_name_{n} = {n};" for n in range(3, 9))
    wide = outer.replace(" c = 2; }", f" c = 2; {fields} }}").replace("Outer", "Wide")
    large = registry.register_schema(f"{package}-wide", Schema(wide, "PROTOBUF", [
        SchemaReference(f"{package}/inner.proto", f"{package}-inner", 1)]))
    value = b"\x00" + large.to_bytes(4, "big") + payload
    with pytest.raises(PermanentDeliveryError, match=rf"PROTOBUF schema id {large}: the registry "
                       r"returned no intact serialized descriptor .*no \.proto parser"):
        SchemaRegistryCodec(lookups(url)).encode(rec(value))
