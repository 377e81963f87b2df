"""The broker: all QStash state (in memory, written through to SQLite) and its rules.

The HTTP layer (``app``) translates requests into calls here; the delivery worker
(``delivery``) asks the broker what to send and reports each attempt's outcome back.
Everything runs on one event loop, so no locking is needed. One module per concept; the
``Broker`` combines them over the shared state (``state``).
"""

from __future__ import annotations

from qstash_server.broker.dead_letters import DeadLetterOps
from qstash_server.broker.delivery import DeliveryOps
from qstash_server.broker.flow_control import FlowControlOps
from qstash_server.broker.logs import LogOps
from qstash_server.broker.messages import MessageOps
from qstash_server.broker.publishing import PublishingOps
from qstash_server.broker.queues import QueueOps
from qstash_server.broker.schedules import ScheduleOps
from qstash_server.broker.state import AttemptResult, OutgoingRequest
from qstash_server.broker.url_groups import UrlGroupOps
from qstash_server.broker.workflow_runs import WorkflowRunOps
from qstash_server.settings import generate_signing_key

__all__ = ["AttemptResult", "Broker", "OutgoingRequest"]


class Broker(
    PublishingOps,
    MessageOps,
    QueueOps,
    UrlGroupOps,
    ScheduleOps,
    DeadLetterOps,
    LogOps,
    FlowControlOps,
    WorkflowRunOps,
    DeliveryOps,
):
    """QStash's state and behaviour, independent of HTTP."""

    def restore_delivery(self) -> None:
        """After start: put every stored, undelivered message back on its way."""
        for msg in sorted(self.messages.values(), key=lambda m: m.seq):
            if msg.state == "ACTIVE":
                msg.state = "RETRY" if msg.retried else "CREATED"
            if msg.slot_queue and msg.slot_queue in self.queues:
                self.queues[msg.slot_queue].holding.add(msg.id)
                self._schedule(msg)
            elif msg.queue and msg.kind == "message" and msg.queue in self.queues:
                q = self.queues[msg.queue]
                if msg.retried or msg.state in ("RETRY", "ERROR"):
                    q.holding.add(msg.id)
                    self._schedule(msg)
                else:
                    q.pending.append(msg.id)
            else:
                self._schedule(msg)
        for q in self.queues.values():
            self._pump_queue(q)

    def flush(self) -> None:
        """Persist pending changes: soon (background commit) when serving, else now."""
        if self.committer is not None:
            self.committer.request()
        else:
            self.store.commit()

    def close(self) -> None:
        self.flush()
        self.store.close()

    def rotate_keys(self) -> dict[str, str]:
        self.current_key, self.next_key = self.next_key, generate_signing_key()
        self.store.put("meta", "keys", {"current": self.current_key, "next": self.next_key})
        return {"current": self.current_key, "next": self.next_key}
