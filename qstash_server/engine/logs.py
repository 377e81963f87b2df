"""Logs: the in-memory entries (a ring, keyset-paged by sequence number) and their API
documents (``/v2/logs``, the SDKs' ``/v2/events``)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson

from qstash_server.engine.messages import Message
from qstash_server.engine.publish_config import redact_view
from qstash_server.engine.state import BrokerState

__all__ = ["LogOps", "build_log"]

def build_log(msg: Message, state: str, now: int, **extra: Any) -> dict[str, Any]:
    red_body, header = redact_view(msg.redact, msg.body, msg.header)
    entry: dict[str, Any] = {
        "time": now,
        "messageId": msg.id,
        "state": state,
        "url": msg.url,
        "method": msg.method,
        "header": header,
        "body": red_body if red_body is not None else base64.b64encode(msg.body).decode(),
        "maxRetries": msg.max_retries,
        "createdAt": msg.created_at,
    }
    optional: dict[str, Any] = {
        "topicName": msg.topic,
        "endpointName": msg.endpoint_name,
        "queueName": msg.queue,
        "scheduleId": msg.schedule_id,
        "callback": msg.callback,
        "failureCallback": msg.failure_callback,
        "retryDelayExpression": msg.retry_delay_expr,
        "retryDelayExpr": msg.retry_delay_expr,
        "label": msg.label,
        "flowControlKey": msg.flow_key,
        "callerIP": msg.caller_ip,
        "timeout": int(msg.timeout_s * 1000) if msg.timeout_s is not None else None,
    }
    entry.update({k: v for k, v in optional.items() if v is not None})
    if msg.labels:
        entry["labels"] = msg.labels
    for key, value in extra.items():
        if value is not None:
            entry[key] = value
    if "responseHeader" in entry:
        entry["responseHeaders"] = entry["responseHeader"]
    return entry


class LogOps(BrokerState):
    """Log entries."""

    def list_logs(self, predicate: Callable[[dict[str, Any]], bool], cursor: str | None,
                  count: int, message_ids: set[str] | None = None, label: str | None = None,
                  in_state: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Log entries newest first; the cursor is the sequence number to continue below
        (``label``, ``in_state``: a label and a state the predicate requires, looked up in the
        log's index)."""
        before = int(cursor) if cursor else None
        out: list[dict[str, Any]] = []
        last_seq: int | None = None
        for seq, at, logged, state, extra in self.logs.newest_first(before, label, in_state):
            msg = Message.from_record(orjson.loads(logged)) if isinstance(logged, bytes) else logged
            if message_ids and msg.id not in message_ids:
                continue
            doc = build_log(msg, state, at, **extra)
            if predicate(doc):
                if len(out) >= count:
                    return out, str(last_seq)
                out.append(doc)
                last_seq = seq
        return out, None
