"""The dead-letter queue: entries (a failed message with the last response it got), list,
get, delete, retry."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

from qstash_server.engine.messages import Message
from qstash_server.engine.publish_config import parse_publish_config
from qstash_server.engine.state import BrokerState, _dlq_sort_key
from qstash_server.engine.timing import BadValue
from qstash_server.problems import ApiError

__all__ = ["DeadLetterOps", "dlq_entry", "dlq_to_api"]


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


class DeadLetterOps(BrokerState):
    """The dead-letter queue."""

    def dlq_list(self, predicate: Callable[[dict[str, Any]], bool], cursor: str | None,
                 count: int) -> tuple[list[dict[str, Any]], str | None]:
        keys = list(self.dlq)
        start = 0
        if cursor:
            start = next((i for i, k in enumerate(keys) if _dlq_sort_key(k) > _dlq_sort_key(cursor)),
                         len(keys))
        out: list[dict[str, Any]] = []
        last: str | None = None
        for key in keys[start:]:
            doc = dlq_to_api(self.dlq[key])
            if predicate(doc):
                out.append(doc)
                last = key
                if len(out) >= count:
                    break
        more = last is not None and keys.index(last) < len(keys) - 1 and len(out) >= count
        return out, (last if more else None)

    def dlq_get(self, dlq_id: str) -> dict[str, Any]:
        entry = self.dlq.get(dlq_id)
        if entry is None:
            raise ApiError(404, f"dlq message {dlq_id} not found")
        return entry

    def dlq_delete(self, dlq_id: str) -> None:
        self.dlq_get(dlq_id)
        del self.dlq[dlq_id]
        self.store.delete("dlq", dlq_id)

    def dlq_retry(self, dlq_id: str, overrides: Mapping[str, str]) -> dict[str, Any]:
        entry = self.dlq_get(dlq_id)
        old = Message.from_record(entry["message"])
        headers = _config_headers_of(old)
        headers.update({k: v for k, v in overrides.items()
                        if k.startswith("upstash-") or k == "content-type"})
        try:
            cfg = parse_publish_config(headers)
        except BadValue as exc:
            raise ApiError(400, str(exc)) from None
        _status, answer = self.accept(
            old.url, old.body, cfg, queue=old.queue, caller_ip=old.caller_ip,
            schedule_id=old.schedule_id,
        )
        self.dlq_delete(dlq_id)
        return dict(answer)

    def dlq_document(self, dlq_id: str) -> dict[str, Any]:
        return dlq_to_api(self.dlq_get(dlq_id))

    def dlq_select(self, predicate: Callable[[dict[str, Any]], bool],
                   count: int | None) -> list[str]:
        """The ids of the entries whose API document matches (the first ``count``)."""
        selected = [k for k, e in list(self.dlq.items()) if predicate(dlq_to_api(e))]
        return selected[:count] if count else selected

    def dlq_missing(self, ids: list[str]) -> list[str]:
        return [i for i in ids if i not in self.dlq]

    def dlq_delete_many(self, ids: list[str]) -> int:
        """Delete the entries that exist; how many were deleted."""
        deleted = 0
        for dlq_id in ids:
            if dlq_id in self.dlq:
                self.dlq_delete(dlq_id)
                deleted += 1
        return deleted


def _config_headers_of(msg: Message) -> dict[str, str]:
    """The publish headers that would recreate ``msg`` (for DLQ retry)."""
    headers: dict[str, str] = {}
    for name, values in msg.header.items():
        if name.lower() == "content-type":
            headers["content-type"] = ",".join(values)
        else:
            headers["upstash-forward-" + name.lower()] = ",".join(values)
    headers["upstash-method"] = msg.method
    headers["upstash-retries"] = str(msg.max_retries)
    if msg.retry_delay_expr:
        headers["upstash-retry-delay"] = msg.retry_delay_expr
    if msg.timeout_s is not None:
        headers["upstash-timeout"] = f"{msg.timeout_s}s"
    if msg.callback:
        headers["upstash-callback"] = msg.callback
    for k, v in msg.callback_cfg.items():
        headers["upstash-callback-" + k] = v
    if msg.failure_callback:
        headers["upstash-failure-callback"] = msg.failure_callback
    for k, v in msg.failure_callback_cfg.items():
        headers["upstash-failure-callback-" + k] = v
    if msg.label:
        headers["upstash-label"] = msg.label
    if msg.redact:
        headers["upstash-redact-fields"] = msg.redact
    if msg.flow_key:
        headers["upstash-flow-control-key"] = msg.flow_key
        parts = []
        if msg.flow_parallelism is not None:
            parts.append(f"parallelism={msg.flow_parallelism}")
        if msg.flow_rate is not None:
            parts.append(f"rate={msg.flow_rate}")
        if msg.flow_period is not None:
            parts.append(f"period={msg.flow_period}s")
        headers["upstash-flow-control-value"] = ", ".join(parts)
    return headers
