"""Avro through fastavro: a registry schema parsed once, values read without their schema.

Logical types come back as Python values (``Decimal``, ``datetime``, ``date``, ``UUID``), which
:func:`connectors.codecs.json_output.to_json` renders as JSON users expect.
"""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro

__all__ = ["decode", "parse"]


def parse(text: str) -> Any:
    """A parsed Avro schema from its JSON text (raises on an invalid schema)."""
    return fastavro.parse_schema(json.loads(text))


def decode(schema: Any, payload: bytes) -> Any:
    """The value in ``payload`` (the bytes after the framing), as plain Python values."""
    return fastavro.schemaless_reader(io.BytesIO(payload), schema, None)
