"""Flow-control keys: per-key parallelism and rate limits with a waitlist (never rejected)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FlowKey"]


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
