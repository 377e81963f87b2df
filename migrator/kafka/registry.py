"""confluent-kafka's Schema Registry client, as the bridge's codecs use it.

The codecs (:mod:`connectors.codecs`) read schemas by id and by subject/version; this module is
where the client is made (with a request timeout: confluent-kafka's waits for an answer forever
unless told otherwise, and a request that times out is retried on a new connection), and where
confluent-kafka's own Protobuf types come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

__all__ = ["REGISTRY_TIMEOUT", "SchemaRegistryError", "confluent_decimal_descriptor", "registry_client"]

REGISTRY_TIMEOUT = 10.0  # seconds per Schema Registry request (then retried, then an error)


def registry_client(url: str, conf: Mapping[str, str] | None = None) -> Any:
    """A ``SchemaRegistryClient`` for ``url`` (it caches schemas by id and subject/version)."""
    return SchemaRegistryClient({"url": url, "timeout": REGISTRY_TIMEOUT, **(conf or {})})


def confluent_decimal_descriptor() -> bytes | None:
    """The serialized ``confluent/type/decimal.proto`` file, or None with an older
    confluent-kafka that does not ship it."""
    try:
        from confluent_kafka.schema_registry.confluent.type import decimal_pb2
    except ImportError:
        return None
    serialized: bytes = decimal_pb2.DESCRIPTOR.serialized_pb
    return serialized
