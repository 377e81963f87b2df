"""Flow-control keys: per-key parallelism and rate limits with a waitlist (never rejected);
pause/pin/reset, and starting waiting messages when allowed."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from qstash_server.engine.state import BrokerState
from qstash_server.problems import ApiError

__all__ = ["FlowControlOps", "FlowKey"]


@dataclass
class FlowKey:
    key: str
    parallelism_max: int = 0
    rate_max: int = 0
    period: int = 1
    paused: bool = False
    pinned_parallelism: bool = False
    pinned_rate: bool = False
    # runtime
    active: int = 0
    rate_count: int = 0
    period_start: float = 0.0
    waitlist: deque[str] = field(default_factory=deque)

    def configure(self, parallelism: int | None, rate: int | None, period: int | None) -> None:
        if not self.pinned_parallelism:
            self.parallelism_max = parallelism or 0
        if not self.pinned_rate:
            self.rate_max = rate or 0
            self.period = period or 1

    def roll(self, now_s: float) -> None:
        if now_s - self.period_start >= self.period:
            self.period_start = now_s
            self.rate_count = 0

    def blocked(self, now_s: float) -> bool:
        self.roll(now_s)
        if self.paused:
            return True
        if self.parallelism_max and self.active >= self.parallelism_max:
            return True
        return bool(self.rate_max and self.rate_count >= self.rate_max)

    def acquire(self) -> None:
        self.active += 1
        self.rate_count += 1

    def to_record(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "parallelism_max": self.parallelism_max,
            "rate_max": self.rate_max,
            "period": self.period,
            "paused": self.paused,
            "pinned_parallelism": self.pinned_parallelism,
            "pinned_rate": self.pinned_rate,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> FlowKey:
        return cls(**data)

    def to_api(self) -> dict[str, Any]:
        return {
            "flowControlKey": self.key,
            "waitListSize": len(self.waitlist),
            "parallelismMax": self.parallelism_max,
            "parallelismCount": self.active,
            "rateMax": self.rate_max,
            "rateCount": self.rate_count,
            "ratePeriod": self.period,
            "ratePeriodStart": int(self.period_start),
            "isPinnedParallelism": self.pinned_parallelism,
            "isPinnedRate": self.pinned_rate,
            "isPaused": self.paused,
        }


class FlowControlOps(BrokerState):
    """Flow-control keys."""

    def get_flow(self, key: str) -> FlowKey:
        fk = self.flow.get(key)
        if fk is None:
            raise ApiError(404, f"flow control key {key} not found")
        return fk

    def flow_pause(self, key: str, paused: bool) -> None:
        fk = self.get_flow(key)
        fk.paused = paused
        self.store.put("flow", key, fk.to_record())
        if not paused:
            self.pump_flow(key)

    def flow_pin(self, key: str, parallelism: int | None, rate: int | None,
                 period: int | None) -> None:
        fk = self.get_flow(key)
        if parallelism is not None:
            fk.parallelism_max, fk.pinned_parallelism = parallelism, True
        if rate is not None:
            fk.rate_max, fk.pinned_rate = rate, True
            fk.period = period or fk.period or 1
            fk.rate_count, fk.period_start = 0, time.time()
        self.store.put("flow", key, fk.to_record())
        self.pump_flow(key)

    def flow_unpin(self, key: str, parallelism: bool, rate: bool) -> None:
        fk = self.get_flow(key)
        if parallelism:
            fk.pinned_parallelism = False
        if rate:
            fk.pinned_rate = False
        self.store.put("flow", key, fk.to_record())
        self.pump_flow(key)

    def flow_reset_rate(self, key: str) -> None:
        fk = self.get_flow(key)
        fk.rate_count, fk.period_start = 0, time.time()
        self.pump_flow(key)

    def pump_flow(self, key: str) -> None:
        fk = self.flow.get(key)
        if fk is None or self.dispatcher is None:
            return
        now_s = time.time()
        while fk.waitlist and not fk.blocked(now_s):
            mid = fk.waitlist.popleft()
            msg = self.messages.get(mid)
            if msg is None:
                continue
            fk.acquire()
            self._start(msg)
        if fk.waitlist and not fk.paused and fk.rate_max and fk.rate_count >= fk.rate_max:
            self.dispatcher.call_later(fk.period_start + fk.period - now_s, self.pump_flow, key)

    def list_flow(self, search: str) -> list[dict[str, Any]]:
        return [fk.to_api() for fk in self.flow.values() if search in fk.key]
