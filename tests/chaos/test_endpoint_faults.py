"""Chaos at the endpoint of a direct-http route: slow (seconds), then not answering at all,
then back. Real broker, a real endpoint on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from migrator.bridge.runner import Bridge
from migrator.config import KafkaConnection
from tests.bridge.harness import FAST_GROUP, RunningBridge, bridge_config
from tests.chaos.checks import commits_behind_delivery, settle, wait_for
from tests.fixtures.endpoint import ReceivedRequest, Reply
from tests.fixtures.kafka import KafkaKit, Rec, unique

pytestmark = [pytest.mark.stack, pytest.mark.chaos]


class Moody:
    """A responder that is fast, slow (``delay`` s per request) or silent (until released)."""

    def __init__(self) -> None:
        self.mode = "fast"
        self.delay = 1.0
        self.release = threading.Event()

    def __call__(self, _req: ReceivedRequest) -> Reply:
        if self.mode == "slow":
            time.sleep(self.delay)
        elif self.mode == "silent":
            self.release.wait(30)
        return Reply()


def test_a_slow_then_silent_then_healthy_endpoint_bounds_in_flight_and_loses_nothing(
    kafka: KafkaKit, endpoint_factory: Any
) -> None:
    """In-flight stays within its limit plus one poll, every partition pauses while the endpoint
    does not answer, commits never pass what the endpoint acknowledged, and once it answers
    again every record arrives (at least once; a repeat carries the same Idempotency-Key)."""
    moody = Moody()
    ep = endpoint_factory(moody)
    topic = kafka.create_topic(unique("chaos-ep"), partitions=4)
    n = 400
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 4) for i in range(n)))
    group = unique("chaos-g")
    limit = 60
    cfg = bridge_config(group=group, batch={"count": 5, "linger_ms": 5},
                        in_flight={"records": limit, "batches": 2},
                        retry={"initial_backoff": 0.05, "max_backoff": 0.5, "max_attempts": 1000},
                        routes=[{"topic": topic, "destinations": [
                            {"kind": "direct-http", "url": ep.url + "/hook", "timeout": 2}]}])
    bridge = Bridge(cfg, KafkaConnection(bootstrap_servers=kafka.bootstrap),
                    consumer_overrides=FAST_GROUP)
    seen = {"in_flight": 0, "paused": 0}

    def tick(b: Bridge) -> None:
        seen["in_flight"] = max(seen["in_flight"], b.in_flight)
        seen["paused"] = max(seen["paused"], b.paused_count)

    moody.mode = "slow"
    rb = RunningBridge(bridge, on_tick=tick)
    try:
        wait_for("slow deliveries", lambda: len(ep.requests), lambda c: c >= 4, timeout=60)
        commits_behind_delivery(kafka, group, topic, 4, ep)
        moody.mode = "silent"
        wait_for("every partition paused while the endpoint is silent",
                 lambda: bridge.paused_count, lambda p: p == 4, timeout=60)
        # past the 2 s timeout: requests time out and are retried
        wait_for("retries of timed-out requests", lambda: bridge.stats.retries,
                 lambda r: r > 0, timeout=60)
        commits_behind_delivery(kafka, group, topic, 4, ep)
        assert rb.thread.is_alive() and rb.error is None, rb.error
        moody.mode = "fast"
        moody.release.set()
        outcome = settle(ep, n)
        wait_for("committed offsets at the end", lambda: kafka.committed(group, topic, 4),
                 lambda c: c == kafka.end_offsets(topic, 4))
        assert bridge.paused_count == 0
    finally:
        moody.release.set()
        stats = rb.stop()
    read_size = min(2 * cfg.batch.count_for(direct=True), 1000)
    assert seen["in_flight"] <= limit + read_size, seen
    assert seen["paused"] == 4 and stats.dead_lettered == 0
    assert outcome.lost == 0, outcome
    keys: dict[tuple[int, int], set[str]] = {}
    for r in ep.requests:
        keys.setdefault((int(r.headers["kafka-partition"]), int(r.headers["kafka-offset"])),
                        set()).add(r.headers["idempotency-key"])
    assert all(len(v) == 1 for v in keys.values())
    print(f"\nendpoint slow/silent/back: max in flight {seen['in_flight']} (limit {limit}), "
          f"{outcome}, retries {stats.retries}")
