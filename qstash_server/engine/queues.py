"""Queues: FIFO lanes with a parallelism (a slot is held through retries and callbacks), and
their operations: create, pause, delete, and the slots that deliver one message at a time."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from qstash_server.engine.messages import Message
from qstash_server.engine.publish_config import validate_name
from qstash_server.engine.state import BrokerState
from qstash_server.engine.timing import now_ms
from qstash_server.problems import ApiError

__all__ = ["Queue", "QueueOps"]


@dataclass
class Queue:
    name: str
    created_at: int
    updated_at: int
    parallelism: int = 1
    paused: bool = False
    # runtime only (rebuilt from messages on start)
    pending: deque[str] = field(default_factory=deque)
    holding: set[str] = field(default_factory=set)
    parked: list[str] = field(default_factory=list)
    # accept-only: stored messages waiting in this queue (not kept in memory one by one)
    backlog: int = 0

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "parallelism": self.parallelism,
            "paused": self.paused,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Queue:
        return cls(
            name=data["name"],
            created_at=data["created_at"],
            updated_at=data["updated_at"],
            parallelism=data["parallelism"],
            paused=data["paused"],
        )

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "parallelism": self.parallelism,
            "paused": self.paused,
            "lag": len(self.pending) + len(self.holding) + self.backlog,
        }


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
            if self.dispatcher is not None and msg.next_at <= now_ms() \
                    and msg.id not in self.dispatcher.inflight:
                self.dispatch_due(msg)  # due now: straight on, not through the timer heap
            else:
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

    def list_queues(self) -> list[dict[str, Any]]:
        return [q.to_api() for q in self.queues.values()]
