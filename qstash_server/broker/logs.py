"""Logs: the in-memory log entries, newest first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from qstash_server.broker.state import BrokerState
from qstash_server.logs import build_log
from qstash_server.messages import Message

__all__ = ["LogOps"]


class LogOps(BrokerState):
    """Log entries."""

    def list_logs(self, predicate: Callable[[dict[str, Any]], bool], cursor: str | None,
                  count: int, message_ids: set[str] | None = None,
                  ) -> tuple[list[dict[str, Any]], str | None]:
        """Log entries newest first; the cursor is the sequence number to continue below."""
        before = int(cursor) if cursor else None
        out: list[dict[str, Any]] = []
        last_seq: int | None = None
        for seq, at, logged, state, extra in reversed(self.logs):
            if before is not None and seq >= before:
                continue
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
