"""Queues: create, pause, delete, and the FIFO slots that deliver one message at a time."""

from __future__ import annotations

from qstash_server.broker.state import BrokerState
from qstash_server.messages import Message, validate_name
from qstash_server.problems import ApiError
from qstash_server.queues import Queue
from qstash_server.timing import now_ms

__all__ = ["QueueOps"]


class QueueOps(BrokerState):
    """Queues and their FIFO slots."""

    def _check_queue_capacity(self) -> None:
        if len(self.queues) >= self.limits.max_queues:
            raise ApiError(
                412,
                f"queue limit of {self.limits.max_queues} reached on the {self.limits.name} plan; "
                "delete a queue first",
            )

    def _create_queue(self, name: str, parallelism: int, paused: bool, now: int) -> Queue:
        q = Queue(name=name, created_at=now, updated_at=now, parallelism=parallelism, paused=paused)
        self.queues[name] = q
        self.store.put("queue", name, q.to_record())
        return q

    def upsert_queue(self, name: str, parallelism: int, paused: bool | None) -> None:
        validate_name("queue", name)
        if parallelism < 1:
            raise ApiError(400, "parallelism must be at least 1")
        if parallelism > self.limits.max_queue_parallelism:
            raise ApiError(
                412,
                f"queue parallelism {parallelism} exceeds the {self.limits.name} plan's maximum "
                f"of {self.limits.max_queue_parallelism}",
            )
        now = now_ms()
        q = self.queues.get(name)
        if q is None:
            self._check_queue_capacity()
            q = self._create_queue(name, parallelism, bool(paused), now)
        else:
            q.parallelism = parallelism
            if paused is not None:
                q.paused = paused
            q.updated_at = now
            self.store.put("queue", name, q.to_record())
        if not q.paused:
            self._resume_parked(q)
            self._pump_queue(q)

    def get_queue(self, name: str) -> Queue:
        q = self.queues.get(name)
        if q is None:
            raise ApiError(404, f"queue {name} not found")
        return q

    def delete_queue(self, name: str) -> None:
        q = self.get_queue(name)
        if self.stored_only and q.backlog:  # its stored messages go with it (cancelled)
            self.store.delete_queue_messages(name)
        for mid in [*q.pending, *q.holding, *q.parked]:
            msg = self.messages.get(mid)
            if msg is not None and msg.kind == "message":
                self._cancel(msg)
        del self.queues[name]
        self.store.delete("queue", name)

    def pause_queue(self, name: str, paused: bool) -> None:
        q = self.get_queue(name)
        q.paused = paused
        q.updated_at = now_ms()
        self.store.put("queue", name, q.to_record())
        if not paused:
            self._resume_parked(q)
            self._pump_queue(q)

    def _resume_parked(self, q: Queue) -> None:
        parked, q.parked = q.parked, []
        for mid in parked:
            msg = self.messages.get(mid)
            if msg is not None:
                self._schedule(msg)

    def _pump_queue(self, q: Queue) -> None:
        if self.settings.accept_only:
            return
        while not q.paused and q.pending and len(q.holding) < q.parallelism:
            mid = q.pending.popleft()
            msg = self.messages.get(mid)
            if msg is None:
                continue
            q.holding.add(mid)
            self._schedule(msg)

    def _release_slot(self, msg: Message) -> None:
        name = msg.slot_queue or (msg.queue if msg.kind == "message" else None)
        if name is None:
            return
        q = self.queues.get(name)
        if q is None:
            return
        if msg.id in q.pending:
            q.pending.remove(msg.id)
        if msg.id in q.parked:
            q.parked.remove(msg.id)
        if msg.id in q.holding:
            q.holding.discard(msg.id)
            self._pump_queue(q)
