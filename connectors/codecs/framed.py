"""Confluent-framed values (magic byte 0, 4-byte schema id) decoded to JSON.

Avro through fastavro (:mod:`connectors.codecs.avro`), JSON Schema payloads passed through after
checking they are JSON, Protobuf from the registry's serialized ``FileDescriptorProto``
(:mod:`connectors.codecs.protobuf`); rendered by :func:`connectors.codecs.json_output.to_json`.
Parsed schemas are cached per id.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Literal

from connectors.codecs import avro
from connectors.codecs.json_output import to_json
from connectors.codecs.lookup import SchemaLookup, registry_outage
from connectors.codecs.protobuf import proto_decode, proto_file
from connectors.sink import Record
from migrator.errors import PermanentDeliveryError, RetryableDeliveryError

__all__ = ["JSON_TYPE", "SchemaRegistryCodec"]

JSON_TYPE = "application/json"


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
            if registry_outage(exc):  # says nothing about the record: hold it, ask again
                raise RetryableDeliveryError(message, outage=True) from None
            raise PermanentDeliveryError(message) from None
        try:
            if kind == "AVRO":
                parsed: Any = avro.parse(text)
            elif kind == "PROTOBUF":
                parsed = proto_file(text, schema_id, rest[0] if rest else ())
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
                data = avro.decode(schema, payload)
                return to_json(data, self._decimal).encode(), JSON_TYPE
            if kind == "JSON":
                json.loads(payload)
                return payload, JSON_TYPE
            if kind == "PROTOBUF":
                data = proto_decode(schema, payload)
                return to_json(data, self._decimal).encode(), JSON_TYPE
        except Exception as exc:
            raise PermanentDeliveryError(
                f"{where}: {kind} payload does not match schema id {schema_id} ({exc})"
            ) from None
        raise PermanentDeliveryError(
            f"{where}: {kind} values cannot be decoded by the bridge yet; use payload mode `bytes`"
        )
