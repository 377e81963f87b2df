"""Messages: look-up, release, and cancellation of accepted messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qstash_server.broker.state import FINAL_STATES, BrokerState
from qstash_server.messages import Message
from qstash_server.problems import ApiError
from qstash_server.timing import now_ms

__all__ = ["MessageOps"]


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
