"""The bridge's counters for the status line, logs and benchmarks, with sampled latencies."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["BridgeStats", "LatencySampler"]

MAX_SAMPLES = 200_000


@dataclass
class BridgeStats:
    """Counters for the status line, logs and benchmarks."""

    received: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    retries: int = 0
    batches: int = 0
    commits: int = 0
    revoked: int = 0  # partitions handed back in rebalances
    lost: int = 0  # partitions taken away without a revoke (thrown out of the group)
    latencies: list[float] = field(default_factory=list)  # sampled, seconds
    started: float = field(default_factory=time.monotonic)


class LatencySampler:
    """Keeps every ``every``-th latency in ``stats.latencies`` (the rate halves whenever
    ``MAX_SAMPLES`` are kept), so memory stays bounded however long the bridge runs."""

    def __init__(self, stats: BridgeStats) -> None:
        self._samples = stats.latencies
        self.every = 1
        self._tick = 0

    def add(self, latency: float, count: int) -> None:
        """``count`` records were accepted ``latency`` seconds after they were polled."""
        before = self._tick // self.every
        self._tick += count
        keep = self._tick // self.every - before
        if keep:
            samples = self._samples
            samples.extend([latency] * keep)
            if len(samples) >= MAX_SAMPLES:
                del samples[::2]
                self.every *= 2
