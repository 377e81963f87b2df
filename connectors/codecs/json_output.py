"""Decoded data as compact JSON the way users expect it: decimals exact (as numbers or
strings, never base64), datetimes and dates ISO 8601 (UTC as ``Z``), UUIDs as strings, bytes
base64."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any, Literal

__all__ = ["to_json"]


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
