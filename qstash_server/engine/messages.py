"""Messages: the record of one accepted message, and look-up, release and cancellation."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from qstash_server.engine.publish_config import (
    DEFAULT_RETRIES,
    body_fields,
    canonical_header,
    redact_view,
)
from qstash_server.engine.state import FINAL_STATES, BrokerState
from qstash_server.engine.timing import now_ms
from qstash_server.problems import ApiError

__all__ = ["Message", "MessageOps"]


@dataclass
class Message:
    """One message to one URL (URL-group publishes make one per endpoint)."""

    id: str
    url: str
    seq: int
    created_at: int
    next_at: int
    body: bytes = b""
    method: str = "POST"
    header: dict[str, list[str]] = field(default_factory=dict)
    not_before: int = 0
    max_retries: int = DEFAULT_RETRIES
    retry_delay_expr: str | None = None
    timeout_s: float | None = None
    callback: str | None = None
    callback_cfg: dict[str, str] = field(default_factory=dict)
    failure_callback: str | None = None
    failure_callback_cfg: dict[str, str] = field(default_factory=dict)
    queue: str | None = None
    topic: str | None = None
    endpoint_name: str | None = None
    schedule_id: str | None = None
    label: str | None = None
    flow_key: str | None = None
    flow_rate: int | None = None
    flow_parallelism: int | None = None
    flow_period: int | None = None
    caller_ip: str | None = None
    kind: str = "message"
    workflow: dict[str, str] = field(default_factory=dict)
    state: str = "CREATED"
    retried: int = 0
    slot_queue: str | None = None
    dedup_key: str | None = None
    redact: str | None = None

    # --- persistence -------------------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        """The stored document: only fields that differ from their defaults (smaller rows;
        ``from_record`` fills the defaults back in). A UTF-8 body is kept as ``text``,
        anything else as base64 ``body``."""
        defaults = _RECORD_DEFAULTS
        data = {k: v for k, v in self.__dict__.items()
                if v is not None and (v or v.__class__ is not dict)
                and (k not in defaults or v != defaults[k])}
        body = data.pop("body", None)
        if body is not None:
            try:
                data["text"] = body.decode("utf-8")
            except UnicodeDecodeError:
                data["body"] = base64.b64encode(body).decode()
        return data

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Message:
        values = {k: v for k, v in data.items() if k in _RECORD_FIELDS}
        if "text" in data:
            values["body"] = data["text"].encode()
        else:
            values["body"] = base64.b64decode(values.get("body", ""))
        return cls(**values)

    # --- API ---------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        if not self.label:
            return []
        return [p.strip() for p in self.label.split(",") if p.strip()]

    @property
    def workflow_run_id(self) -> str | None:
        return self.workflow.get("upstash-workflow-runid")

    def forward_cfg_header(self, cfg: dict[str, str]) -> dict[str, list[str]]:
        return {
            canonical_header(k[len("forward-"):]): [v]
            for k, v in cfg.items()
            if k.startswith("forward-")
        }

    def to_api(self) -> dict[str, Any]:
        red_body, header = redact_view(self.redact, self.body, self.header)
        out: dict[str, Any] = {
            "messageId": self.id,
            "url": self.url,
            "method": self.method,
            "header": header,
            "maxRetries": self.max_retries,
            "notBefore": self.not_before,
            "createdAt": self.created_at,
        }
        out.update(body_fields(self.body, red_body))
        optional: dict[str, Any] = {
            "topicName": self.topic,
            "endpointName": self.endpoint_name,
            "queueName": self.queue,
            "scheduleId": self.schedule_id,
            "callerIP": self.caller_ip,
            "callback": self.callback,
            "failureCallback": self.failure_callback,
            "retryDelayExpression": self.retry_delay_expr,
            "label": self.label,
            "flowControlKey": self.flow_key,
            "rate": self.flow_rate,
            "parallelism": self.flow_parallelism,
            "period": self.flow_period,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.labels:
            out["labels"] = self.labels
        if self.callback:
            out["callbackHeader"] = self.forward_cfg_header(self.callback_cfg)
        if self.failure_callback:
            out["failureCallbackHeader"] = self.forward_cfg_header(self.failure_callback_cfg)
        return out


_RECORD_FIELDS = frozenset(f.name for f in fields(Message))
# fields left out of a stored record when they hold their default (body: see to_record)
_RECORD_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in fields(Message) if f.default is not MISSING and f.name != "body"
}


class MessageOps(BrokerState):
    """Accepted messages by id."""

    def _find(self, message_id: str) -> Message | None:
        if not self.stored_only:
            return self.messages.get(message_id)
        seq = _seq_of(message_id)
        data = None if seq is None else self.store.get_message(seq)
        if data is None or data.get("id") != message_id:
            return None
        return Message.from_record(data)

    def get_message(self, message_id: str) -> dict[str, Any]:
        msg = self._find(message_id)
        if msg is None:
            raise ApiError(404, f"message {message_id} not found")
        return msg.to_api()

    def retry_now(self, message_id: str) -> None:
        """Release a delayed or backing-off message for immediate delivery."""
        msg = self.messages.get(message_id)
        now = now_ms()
        if msg is not None and msg.queue is not None and msg.kind == "message":
            raise ApiError(400, f"message {message_id} is in queue {msg.queue}; queued messages "
                                "are delivered in order and cannot be released early")
        if msg is None or msg.state in ("ACTIVE", *FINAL_STATES) or msg.next_at <= now:
            raise ApiError(404, f"message {message_id} is not waiting for delivery")
        msg.next_at = now
        self._save(msg)
        self._schedule(msg)

    def cancel(self, message_id: str) -> None:
        msg = self._find(message_id)
        if msg is None:
            raise ApiError(404, f"message {message_id} not found")
        self._cancel(msg)

    def _cancel(self, msg: Message) -> None:
        self._log(msg, "CANCEL_REQUESTED")
        self._cancel_effect(msg)

    def _cancel_effect(self, msg: Message) -> None:
        """A requested cancel takes effect: the message is removed, or, in flight, decided at
        the end of its call (``DeliveryOps.attempt_done``)."""
        if self.stored_only:
            msg.state = "CANCELED"
            self.store.delete_message(msg.seq)
            self._log(msg, "CANCELED")
            q = self.queues.get(msg.queue) if msg.queue and msg.kind == "message" else None
            if q is not None:
                q.backlog = max(0, q.backlog - 1)
            return
        if self.dispatcher is not None and msg.id in self.dispatcher.inflight:
            self.cancelling.add(msg.id)
            return
        self._finish(msg, "CANCELED")

    def cancel_many(self, ids: list[str] | None, predicate: Callable[[dict[str, Any]], bool] | None,
                    count: int | None) -> int:
        if self.stored_only:
            if ids:
                found = (self._find(i) for i in dict.fromkeys(ids))
                targets = [m for m in found if m is not None]
            else:
                targets = [m for m in map(Message.from_record, self.store.load_messages())
                           if predicate is None or predicate(m.to_api())]
        elif ids:
            targets = [self.messages[i] for i in ids if i in self.messages]
        else:
            targets = [m for m in self.messages.values() if predicate is None or predicate(m.to_api())]
        if count is not None:
            targets = targets[:count]
        for msg in targets:
            self._cancel(msg)
        return len(targets)


def _seq_of(message_id: str) -> int | None:
    """The sequence number a message id carries (see ``Broker._message_id``)."""
    if not message_id.startswith("msg_") or len(message_id) < 30:
        return None
    try:
        return int(message_id[20:], 16)
    except ValueError:
        return None
