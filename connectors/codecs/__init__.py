"""Payload codecs: a Kafka record's value becomes an HTTP body.

    codec         the Codec contract; BytesCodec passes the value through
    framed        SchemaRegistryCodec: Confluent-framed values (Avro, JSON Schema, Protobuf) to JSON
    lookup        Schema Registry look-ups (schema id -> schema, Protobuf references)
    avro          Avro decoding (fastavro)
    protobuf      Protobuf decoding (descriptor pools from serialized FileDescriptorProtos)
    json_output   decoded data as JSON: exact decimals, ISO 8601 datetimes

A value that cannot be decoded raises :class:`~migrator.errors.PermanentDeliveryError`, which the
bridge dead-letters.
"""

from __future__ import annotations

from connectors.codecs.codec import BytesCodec, Codec
from connectors.codecs.framed import SchemaRegistryCodec
from connectors.codecs.json_output import to_json
from connectors.codecs.lookup import ProtoReferences, RegistryLookup, SchemaLookup, registry_lookup

__all__ = [
    "BytesCodec",
    "Codec",
    "ProtoReferences",
    "RegistryLookup",
    "SchemaLookup",
    "SchemaRegistryCodec",
    "registry_lookup",
    "to_json",
]
