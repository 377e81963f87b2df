"""What every chaos test ends with, and waits that raise with what they saw."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx

from migrator.bridge.metrics import BridgeMetrics, MetricsServer
from migrator.bridge.runner import Bridge
from migrator.config import KafkaConnection, QStashConnection
from tests.bridge.harness import FAST_GROUP, RunningBridge
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit

__all__ = [
    "Outcome",
    "assert_running",
    "bridge_with_metrics",
    "commits_behind_delivery",
    "delivered_keys",
    "free_port",
    "offsets_by_partition",
    "readyz",
    "settle",
    "wait_for",
]

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T], ok: Callable[[T], bool],
             timeout: float = 60.0) -> T:
    """Poll ``probe`` until ``ok``; raise naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    seen = probe()
    while not ok(seen):
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {seen!r}")
        time.sleep(0.05)
        seen = probe()
    return seen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def delivered_keys(ep: RecordingEndpoint) -> Counter[tuple[int, int]]:
    return Counter(
        (int(r.headers["kafka-partition"]), int(r.headers["kafka-offset"])) for r in list(ep.requests)
    )


def offsets_by_partition(ep: RecordingEndpoint) -> dict[int, list[int]]:
    """Offsets in arrival order, per partition."""
    out: dict[int, list[int]] = {}
    for r in list(ep.requests):
        out.setdefault(int(r.headers["kafka-partition"]), []).append(int(r.headers["kafka-offset"]))
    return out


class Outcome:
    """Records at the endpoint after a fault: distinct, duplicated, lost."""

    def __init__(self, got: Counter[tuple[int, int]], expected: int) -> None:
        self.got = got
        self.distinct = len(got)
        self.lost = expected - self.distinct
        self.duplicates = sum(c - 1 for c in got.values())

    def __repr__(self) -> str:
        return f"Outcome(distinct={self.distinct}, lost={self.lost}, duplicates={self.duplicates})"


def settle(ep: RecordingEndpoint, n: int, timeout: float = 120.0) -> Outcome:
    """Wait for ``n`` distinct records at the endpoint, then 1.5 s more for late duplicates."""
    wait_for(f"{n} distinct records at the endpoint", lambda: len(delivered_keys(ep)),
             lambda seen: seen >= n, timeout)
    time.sleep(1.5)
    return Outcome(delivered_keys(ep), n)


def commits_behind_delivery(kafka: KafkaKit, group: str, topic: str, partitions: int,
                            ep: RecordingEndpoint) -> dict[int, int]:
    """Committed offsets never ahead of delivery: every offset below a partition's committed
    offset is at the endpoint (committed is read first; the endpoint only grows)."""
    committed = kafka.committed(group, topic, partitions)
    have = delivered_keys(ep)
    for p, c in committed.items():
        missing = [o for o in range(max(c, 0)) if (p, o) not in have]
        assert not missing, f"partition {p} committed {c} but offsets {missing[:5]} never arrived"
    return committed


def readyz(port: int) -> tuple[int, str]:
    r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    return r.status_code, r.text.strip()


@contextmanager
def bridge_with_metrics(cfg: Any, kafka: KafkaKit, qstash: QStashConnection,
                        stall_after: float = 60.0,
                        consumer_overrides: Mapping[str, str] | None = None,
                        ) -> Iterator[tuple[RunningBridge, int]]:
    """A bridge in a thread with its /metrics, /healthz and /readyz on a free port
    (``consumer_overrides`` on top of the fast group settings)."""
    metrics = BridgeMetrics(stall_after=stall_after)
    server = MetricsServer(metrics, 0, host="127.0.0.1")
    bridge = Bridge(cfg, KafkaConnection(bootstrap_servers=kafka.bootstrap), qstash=qstash,
                    metrics=metrics,
                    consumer_overrides={**FAST_GROUP, **(consumer_overrides or {})})
    rb = RunningBridge(bridge)
    try:
        yield rb, server.port
    finally:
        if rb.thread.is_alive():
            bridge.stop()
            rb.thread.join(60)
        server.close()


def assert_running(rb: RunningBridge) -> None:
    assert rb.thread.is_alive() and rb.error is None, f"the bridge stopped: {rb.error!r}"
