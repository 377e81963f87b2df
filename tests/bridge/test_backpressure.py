"""Backpressure on the real broker: a stuck endpoint bounds what the bridge holds, then pauses.

At the in-flight limit the bridge first stops taking records from librdkafka's bounded prefetch
queue; when the limit holds for ``PAUSE_AFTER`` seconds it pauses every partition (and keeps
polling), and resumes once half the limit is free. Nothing is lost or duplicated on the way.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from migrator.bridge.runner import PAUSE_AFTER
from tests.bridge.harness import bridge_config, running_bridge, wait_until
from tests.fixtures.endpoint import Reply
from tests.fixtures.kafka import KafkaKit, Rec, unique

pytestmark = pytest.mark.stack


def test_a_stuck_endpoint_bounds_in_flight_then_pauses_and_recovers(
    kafka, endpoint_factory
) -> None:
    kit: KafkaKit = kafka
    topic = kit.create_topic(unique("bp"), partitions=2)
    n = 1_000
    kit.produce(topic, (Rec(f'{{"n":{i}}}', partition=i % 2) for i in range(n)))
    gate = threading.Event()

    def stuck(_req):
        gate.wait(120)
        return Reply(200)

    endpoint = endpoint_factory(stuck)
    limit, read_size = 100, 20  # read_size: one poll takes at most 2 x batch.count records
    cfg = bridge_config(
        group=unique("bp-g"),
        batch={"count": 10, "linger_ms": 5},
        in_flight={"records": limit, "batches": 2},
        routes=[{"topic": topic, "destinations": [{"kind": "direct-http", "url": endpoint.url}]}],
    )
    peak = 0
    with running_bridge(cfg, kit.bootstrap) as rb:
        bridge = rb.bridge

        def paused_and_in_flight() -> tuple[int, int]:
            nonlocal peak
            peak = max(peak, bridge.in_flight)
            return bridge.paused_count, bridge.in_flight

        wait_until(paused_and_in_flight, 30 + PAUSE_AFTER, until=lambda s: s[0] == 2,
                   what="both partitions paused (paused, in flight)")
        assert limit <= bridge.in_flight < limit + read_size
        assert bridge.stats.received < n  # the rest stayed in Kafka
        gate.set()
        endpoint.wait_for(n, timeout=60)
        wait_until(lambda: bridge.paused_count, until=lambda k: k == 0, what="no partition paused")
        stats = rb.stop()
    assert peak < limit + read_size
    offsets = Counter(int(r.headers["kafka-offset"]) * 2 + int(r.headers["kafka-partition"])
                      for r in endpoint.requests)
    assert len(offsets) == n and max(offsets.values()) == 1
    assert stats.delivered == n
    assert kit.committed(cfg.group, topic, 2) == kit.end_offsets(topic, 2)
