"""Dead-letter entries: a failed message with the last response it got."""

from __future__ import annotations

import base64
from typing import Any

from qstash_server.messages import Message

__all__ = ["dlq_entry", "dlq_to_api"]


def dlq_entry(
    dlq_id: str,
    msg: Message,
    now: int,
    status: int | None,
    headers: dict[str, list[str]] | None,
    body: bytes | None,
) -> dict[str, Any]:
    return {
        "dlqId": dlq_id,
        "failedAt": now,
        "message": msg.to_record(),
        "responseStatus": status or 0,
        "responseHeader": headers or {},
        "responseBody": base64.b64encode(body or b"").decode(),
    }


def dlq_to_api(entry: dict[str, Any]) -> dict[str, Any]:
    msg = Message.from_record(entry["message"])
    out = msg.to_api()
    out["dlqId"] = entry["dlqId"]
    out["responseStatus"] = entry["responseStatus"]
    out["responseHeader"] = entry["responseHeader"]
    raw = base64.b64decode(entry["responseBody"])
    try:
        out["responseBody"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        out["responseBodyBase64"] = entry["responseBody"]
    return out
