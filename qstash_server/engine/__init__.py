"""The engine's broker: all QStash state (in memory, written through to SQLite) and its rules.

The HTTP layer (``qstash_server.api``) translates requests into calls here; the dispatcher
(``dispatcher``) asks the broker what to send and reports each attempt's outcome back.
Everything runs on one event loop, so no locking is needed. One module per concept; the
``Broker`` combines them over the shared state (``state``).
"""

from __future__ import annotations

from typing import Any

from qstash_server.engine.batches import BatchOps
from qstash_server.engine.bulk_actions import BulkAction, BulkActionOps
from qstash_server.engine.dead_letters import DeadLetterOps
from qstash_server.engine.delivery import DeliveryOps
from qstash_server.engine.flow_control import FlowControlOps, FlowKey
from qstash_server.engine.group_commit import GroupCommitter
from qstash_server.engine.logs import LogOps
from qstash_server.engine.messages import Message, MessageOps
from qstash_server.engine.publishing import PublishingOps
from qstash_server.engine.queues import Queue, QueueOps
from qstash_server.engine.schedules import Schedule, ScheduleOps
from qstash_server.engine.state import AttemptResult, OutgoingRequest, _dedup_hit, _dlq_sort_key
from qstash_server.engine.templates import TemplateCache
from qstash_server.engine.timing import now_ms
from qstash_server.engine.url_groups import UrlGroup, UrlGroupOps
from qstash_server.engine.workflow_runs import WorkflowRunOps
from qstash_server.settings import ServerSettings, generate_signing_key

__all__ = ["AttemptResult", "Broker", "OutgoingRequest"]


class Broker(
    BatchOps,
    PublishingOps,
    MessageOps,
    BulkActionOps,
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

    def __init__(self, settings: ServerSettings) -> None:
        self._templates = TemplateCache(settings.limits)
        self.bulk_actions: dict[str, BulkAction] = {}
        super().__init__(settings)

    def _load(self) -> None:
        """Every resource's stored state, read once at start."""
        s = self.store
        for _, data in s.load("queue"):
            q = Queue.from_record(data)
            self.queues[q.name] = q
        for _, data in s.load("group"):
            g = UrlGroup.from_record(data)
            self.groups[g.name] = g
        for _, data in s.load("schedule"):
            sc = Schedule.from_record(data)
            self.schedules[sc.id] = sc
        for key, data in sorted(s.load("dlq"), key=lambda kv: _dlq_sort_key(kv[0])):
            self.dlq[key] = data
        for key, data in s.load("run"):
            self.runs[key] = data
        now = now_ms()
        for key, row in ([] if self.stored_only else s.load_dedup()):
            if row[0] > now:
                self.dedup[key] = _dedup_hit(row)
        for _, data in s.load("flow"):
            fk = FlowKey.from_record(data)
            self.flow[fk.key] = fk
        for key, data in s.load("meta"):
            if key == "daily":
                self.daily_day, self.daily_count = data["day"], data["count"]
            elif key == "seq":
                self._seq = data["seq"]
        if self.stored_only:
            # queue lag of the stored messages, without loading them
            for queue, n in s.message_counts_by_queue().items():
                if queue in self.queues:
                    self.queues[queue].backlog = n
            self._seq = max(self._seq, s.max_message_seq())
            loaded: list[Message] = []
        else:
            loaded = [Message.from_record(d) for d in s.load_messages()]
        for msg in loaded:
            self._seq = max(self._seq, msg.seq)
            self.messages[msg.id] = msg
        self.store.put("meta", "keys", {"current": self.current_key, "next": self.next_key})
        self.store.commit()

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

    @property
    def bearer(self) -> str:
        """The ``Authorization`` header value clients must send."""
        return "Bearer " + self.token

    def signing_keys(self) -> dict[str, str]:
        return {"current": self.current_key, "next": self.next_key}

    def global_parallelism(self) -> dict[str, int]:
        return {
            "parallelismMax": self.settings.delivery_concurrency,
            "parallelismCount": len(self.dispatcher.inflight) if self.dispatcher else 0,
        }

    def set_faults(self, rate: float, statuses: tuple[int, ...] | None) -> dict[str, Any]:
        """Change fault injection at runtime (test-only); statuses None keeps the current ones."""
        self.fault_rate = rate
        if statuses:
            self.fault_statuses = statuses
        return {"rate": self.fault_rate, "statuses": list(self.fault_statuses)}

    def start_committer(self) -> None:
        """Commit on a background thread from now on (the server's event loop is running)."""
        self.committer = GroupCommitter(self.store)

    def stop_committer(self) -> None:
        committer, self.committer = self.committer, None
        if committer is not None:
            committer.close()

    async def commit(self) -> None:
        """Return once every change made so far is on disk (shared with concurrent callers)."""
        if self.committer is not None:
            await self.committer.commit()
        else:
            self.flush()

    def rotate_keys(self) -> dict[str, str]:
        self.current_key, self.next_key = self.next_key, generate_signing_key()
        self.store.put("meta", "keys", {"current": self.current_key, "next": self.next_key})
        return {"current": self.current_key, "next": self.next_key}
