"""Queues: FIFO lanes with a parallelism; a slot is held through retries and callbacks."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Queue"]


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
