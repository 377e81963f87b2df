"""The codec contract, and the codec that passes a value through.

A :class:`Codec` turns a Kafka record's value into an HTTP body and its content type; a value
that cannot be decoded raises :class:`~migrator.errors.PermanentDeliveryError` (the bridge
dead-letters it), or :class:`~migrator.errors.RetryableDeliveryError` marked ``outage`` when the
reason is not the record's (its Schema Registry does not answer).
"""

from __future__ import annotations

from typing import Protocol

from connectors.sink import Record

__all__ = ["BytesCodec", "Codec"]


class Codec(Protocol):
    def encode(self, record: Record) -> tuple[bytes, str]:
        """(body, content type) for ``record``; PermanentDeliveryError when undecodable."""
        ...


class BytesCodec:
    """Pass the value through (``Content-Type`` from a record header named ``content-type``
    when present, else ``application/octet-stream``)."""

    def encode(self, record: Record) -> tuple[bytes, str]:
        content_type = "application/octet-stream"
        for name, value in record.headers:
            if name.lower() == "content-type" and value:
                content_type = value.decode("latin-1")
        return record.value or b"", content_type
