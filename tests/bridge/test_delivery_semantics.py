"""The delivery-semantics suite: real broker, the local QStash server, real endpoints."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from migrator.bridge.runner import Bridge
from migrator.config import KafkaConnection
from tests.bridge.harness import (
    FAST_GROUP,
    BridgeProcess,
    RunningBridge,
    bridge_config,
    running_bridge,
    wait_until,
)
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique

pytestmark = [pytest.mark.stack, pytest.mark.qstash]


def delivered_keys(ep: RecordingEndpoint) -> Counter[tuple[int, int]]:
    return Counter(
        (int(r.headers["kafka-partition"]), int(r.headers["kafka-offset"])) for r in ep.requests
    )


def settle_exactly(ep: RecordingEndpoint, n: int, timeout: float = 90.0) -> Counter[tuple[int, int]]:
    """Wait for ``n`` distinct records, then a little more to catch late duplicates."""
    wait_until(lambda: len(delivered_keys(ep)), timeout, until=lambda k: k >= n,
               what=f"{n} distinct records at {ep.url}")
    time.sleep(1.5)
    return delivered_keys(ep)


def wait_delivering(proc: BridgeProcess, ep: RecordingEndpoint, count: int,
                    caught_up: Callable[[], bool] = lambda: False) -> None:
    """Wait until ``ep`` has ``count`` requests while ``proc`` is still running: a bridge
    that exits on its own (or never delivers) fails the test instead of being "killed".
    ``caught_up`` ends the wait too: through QStash a restarted bridge may have nothing new to
    deliver (an earlier round published everything and QStash's dedup ids absorb the replay),
    and then its commits reaching the end offsets show it running."""
    wait_until(lambda: (len(ep.requests) >= count or caught_up(), proc.process.poll()), 60,
               until=lambda seen: seen[0] or seen[1] is not None, interval=0.2,
               what=f"{count} requests at {ep.url} (or every offset committed) from a running bridge")
    assert proc.process.poll() is None, f"the bridge exited by itself:\n{proc.output()[-3000:]}"


def write_config(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_exactly_once_through_qstash_across_kill9_restarts(
    kafka: KafkaKit, qstash_server: Any, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    topic = kafka.create_topic(unique("sem-kill"), partitions=3)
    n = 900
    kafka.produce(topic, (Rec(f"v{i}", key=f"k{i}", partition=i % 3) for i in range(n)))
    group = unique("sem-g")
    path = write_config(tmp_path, {
        "kafka": {"bootstrap_servers": kafka.bootstrap}, "group": group,
        "batch": {"count": 25, "linger_ms": 5}, "in_flight": {"batches": 4},
        "routes": [{"topic": topic, "destinations": [
            {"kind": "publish-url", "url": endpoint.url + "/hook", "retries": 5}]}],
    })
    env = {"QSTASH_URL": qstash_server.url, "QSTASH_TOKEN": qstash_server.token}
    rng = random.Random(5)
    for _ in range(3):
        proc = BridgeProcess(path, env)
        # kill at a random point once it has started delivering
        wait_delivering(proc, endpoint, len(endpoint.requests) + 1, caught_up=lambda: (
            kafka.committed(group, topic, 3) == kafka.end_offsets(topic, 3)))
        time.sleep(rng.uniform(0.05, 1.0))
        proc.kill()
    final = BridgeProcess(path, env)
    try:
        got = settle_exactly(endpoint, n)
        kafka.wait_committed(group, topic, 3)
    finally:
        assert final.terminate() == 0, final.output()
    assert len(got) == n, f"missing {n - len(got)} records"
    dupes = {k: c for k, c in got.items() if c > 1}
    assert not dupes, f"duplicates at the endpoint: {list(dupes.items())[:5]}"
    assert {r.headers.get("upstash-message-id", "")[:4] for r in endpoint.requests} == {"msg_"}


def test_injected_429_and_503_lose_nothing(
    kafka: KafkaKit, qstash_server_factory: Any, endpoint: RecordingEndpoint
) -> None:
    server = qstash_server_factory(fault_rate=0.2, fault_statuses=(429, 503))
    topic = kafka.create_topic(unique("sem-faults"), partitions=2)
    n = 600
    kafka.produce(topic, (Rec(json.dumps({"i": i}), partition=i % 2) for i in range(n)))
    group = unique("sem-g")
    cfg = bridge_config(group=group, batch={"count": 10, "linger_ms": 2},
                        retry={"initial_backoff": 0.02, "max_backoff": 0.2, "cap": 1.5,
                               "max_attempts": 100},
                        routes=[{"topic": topic, "destinations": [
                            {"kind": "publish-url", "url": endpoint.url}]}])
    with running_bridge(cfg, kafka.bootstrap, qstash=server.connection) as rb:
        got = settle_exactly(endpoint, n)
        stats = rb.stop()
    assert len(got) == n and max(got.values()) == 1
    assert stats.retries > 0 and stats.dead_lettered == 0
    assert kafka.committed(group, topic, 2) == kafka.end_offsets(topic, 2)


def test_ordered_route_through_fifo_queues_keeps_partition_order(
    kafka: KafkaKit, qstash_server: Any, endpoint: RecordingEndpoint
) -> None:
    topic = kafka.create_topic(unique("sem-order"), partitions=2)
    n = 200
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 2) for i in range(n)))
    cfg = bridge_config(group=unique("sem-g"), batch={"count": 15, "linger_ms": 2},
                        routes=[{"topic": topic, "ordered": True, "destinations": [
                            {"kind": "enqueue-queue", "queue": unique("q") + "-{partition}",
                             "url": endpoint.url}]}])
    with running_bridge(cfg, kafka.bootstrap, qstash=qstash_server.connection) as rb:
        got = settle_exactly(endpoint, n)
        rb.stop()
    assert len(got) == n and max(got.values()) == 1
    for p in (0, 1):
        offsets = [int(r.headers["kafka-offset"]) for r in endpoint.requests
                   if r.headers["kafka-partition"] == str(p)]
        assert offsets == sorted(offsets)


def test_three_bridges_in_one_group_one_killed_lose_nothing(
    kafka: KafkaKit, qstash_server: Any, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    topic = kafka.create_topic(unique("sem-scale"), partitions=6)
    n = 1200
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 6) for i in range(n)))
    group = unique("sem-g")
    path = write_config(tmp_path, {
        "kafka": {"bootstrap_servers": kafka.bootstrap}, "group": group,
        "batch": {"count": 10, "linger_ms": 5}, "in_flight": {"batches": 2, "records": 200},
        "routes": [{"topic": topic, "destinations": [{"kind": "publish-url", "url": endpoint.url}]}],
    })
    env = {"QSTASH_URL": qstash_server.url, "QSTASH_TOKEN": qstash_server.token}
    procs = [BridgeProcess(path, env) for _ in range(3)]
    try:
        endpoint.wait_for(n // 4, 60)
        procs[1].kill()
        got = settle_exactly(endpoint, n)
        kafka.wait_committed(group, topic, 6)
    finally:
        for p in (procs[0], procs[2]):
            assert p.terminate() == 0, p.output()
    assert len(got) == n, f"missing {n - len(got)}"
    assert max(got.values()) == 1


def test_direct_mode_is_at_least_once_across_kill9_with_stable_idempotency_keys(
    kafka: KafkaKit, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    topic = kafka.create_topic(unique("sem-direct-kill"), partitions=2)
    n = 600
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 2) for i in range(n)))
    group = unique("sem-g")
    path = write_config(tmp_path, {
        "kafka": {"bootstrap_servers": kafka.bootstrap}, "group": group,
        "batch": {"count": 20, "linger_ms": 5},
        "routes": [{"topic": topic, "destinations": [{"kind": "direct-http", "url": endpoint.url}]}],
    })
    for _ in range(2):
        proc = BridgeProcess(path, {})
        wait_delivering(proc, endpoint, len(endpoint.requests) + 50)
        proc.kill()
    final = BridgeProcess(path, {})
    try:
        got = settle_exactly(endpoint, n)
        kafka.wait_committed(group, topic, 2)
    finally:
        assert final.terminate() == 0, final.output()
    assert len(got) == n  # every record at least once
    keys: dict[tuple[int, int], set[str]] = {}
    for r in endpoint.requests:
        k = (int(r.headers["kafka-partition"]), int(r.headers["kafka-offset"]))
        keys.setdefault(k, set()).add(r.headers["idempotency-key"])
    assert all(len(v) == 1 for v in keys.values())  # a redelivery carries the same key


def test_a_rebalance_drains_and_commits_before_handing_over(
    kafka: KafkaKit, endpoint_factory: Any
) -> None:
    """Direct mode has no dedup, so zero duplicates proves the revoke drained and committed."""
    topic = kafka.create_topic(unique("sem-rebalance"), partitions=4)
    n = 1500
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 4) for i in range(n)))

    def slow(_req: Any) -> Any:
        time.sleep(0.002)
        from tests.fixtures.endpoint import Reply

        return Reply()

    ep = endpoint_factory(slow)
    group = unique("sem-g")
    cfg = bridge_config(group=group, batch={"count": 20, "linger_ms": 5},
                        in_flight={"records": 300, "batches": 4},
                        routes=[{"topic": topic, "destinations": [
                            {"kind": "direct-http", "url": ep.url}]}])
    with running_bridge(cfg, kafka.bootstrap) as first:
        ep.wait_for(200, 60)
        with running_bridge(cfg, kafka.bootstrap) as second:  # joins: the group rebalances
            got = settle_exactly(ep, n)
            # cooperative-sticky: the first bridge handed over only what the second took
            moved = second.bridge.stats.received > 0
            assert first.bridge.stats.revoked == len(second.bridge.assigned) == 2, (
                first.bridge.stats.revoked, second.bridge.assigned)
            second.stop()
        first.stop()
        assert moved
    assert len(got) == n
    assert max(got.values()) == 1, [k for k, c in got.items() if c > 1][:5]
    assert second.stats is not None and second.stats.delivered > 0  # it really took partitions
    assert kafka.committed(group, topic, 4) == kafka.end_offsets(topic, 4)


def test_partitions_lost_to_a_stalled_loop_are_not_committed_and_nothing_is_lost(
    kafka: KafkaKit, qstash_server: Any, endpoint: RecordingEndpoint
) -> None:
    """A loop stalled past ``max.poll.interval.ms`` (a long GC pause, a stuck callback) loses
    its partitions: the bridge must not drain or commit them (they may belong to another member
    already), must keep running, rejoin, and deliver every record once through QStash."""
    topic = kafka.create_topic(unique("sem-lost"), partitions=2)
    n = 600
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 2) for i in range(n)))
    group = unique("sem-g")
    cfg = bridge_config(group=group, batch={"count": 10, "linger_ms": 5},
                        in_flight={"records": 100, "batches": 2},
                        routes=[{"topic": topic, "destinations": [
                            {"kind": "publish-url", "url": endpoint.url + "/hook"}]}])
    bridge = Bridge(cfg, KafkaConnection(bootstrap_servers=kafka.bootstrap),
                    qstash=qstash_server.connection,
                    consumer_overrides={**FAST_GROUP, "max.poll.interval.ms": "6000"})
    stalled: list[int] = []

    def tick(b: Bridge) -> None:
        if not stalled and b.stats.delivered >= 100:
            stalled.append(b.stats.delivered)
            time.sleep(9)  # past max.poll.interval.ms: librdkafka leaves the group

    rb = RunningBridge(bridge, on_tick=tick)
    try:
        got = settle_exactly(endpoint, n)
        kafka.wait_committed(group, topic, 2)
    finally:
        rb.stop()
    assert stalled, "the loop never stalled"
    assert bridge.stats.lost == 2, bridge.stats
    assert len(got) == n, f"missing {n - len(got)} records"
    assert max(got.values()) == 1, [k for k, c in got.items() if c > 1][:5]


@pytest.mark.parametrize("count_outages", [False, True])
def test_a_qstash_outage_holds_records_instead_of_dead_lettering_them(
    kafka: KafkaKit, qstash_server_factory: Any, endpoint: RecordingEndpoint, count_outages: bool
) -> None:
    """QStash refusing every request (an outage, its daily quota) says nothing about the
    records: they are retried for as long as it lasts, far past max_attempts, and all arrive
    once it ends. With retry.count_outages they are dead-lettered after max_attempts instead."""
    server = qstash_server_factory(fault_rate=1.0, fault_statuses=(503,))
    topic = kafka.create_topic(unique("sem-outage"), partitions=2)
    dlq = kafka.create_topic(unique("sem-outage-dlq"), partitions=1)
    n = 200
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 2) for i in range(n)))
    group = unique("sem-g")
    cfg = bridge_config(group=group, dead_letter={"topic": dlq},
                        retry={"max_attempts": 2, "initial_backoff": 0.02, "max_backoff": 0.1,
                               "count_outages": count_outages},
                        routes=[{"topic": topic, "destinations": [
                            {"kind": "publish-url", "url": endpoint.url + "/hook"}]}])
    with running_bridge(cfg, kafka.bootstrap, qstash=server.connection) as rb:
        if count_outages:
            wait_until(lambda: rb.bridge.stats.dead_lettered, until=lambda d: d == n,
                       what=f"{n} dead-lettered")
        else:
            # every record tried many times over its max_attempts of 2, none dead-lettered
            wait_until(lambda: rb.bridge.stats.retries, until=lambda r: r >= 10 * n,
                       what=f"{10 * n} retries")
            assert rb.bridge.stats.dead_lettered == 0 and rb.bridge.stats.delivered == 0
            gauge = ("bridge_destination_unavailable", {"group": group, "route": topic})
            assert rb.bridge.metrics.registry.get_sample_value(*gauge) == 1.0
            server.set_faults(0.0)
            got = settle_exactly(endpoint, n)
            assert len(got) == n and max(got.values()) == 1
            assert rb.bridge.metrics.registry.get_sample_value(*gauge) == 0.0
        kafka.wait_committed(group, topic, 2)
        stats = rb.stop()
    assert (stats.delivered, stats.dead_lettered) == ((0, n) if count_outages else (n, 0))


def test_a_direct_endpoint_that_is_down_for_a_while_loses_nothing(
    kafka: KafkaKit, endpoint_factory: Any
) -> None:
    """Connections refused (the endpoint is down) are an outage: held and retried past
    max_attempts, then delivered once it is back, on the same port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    topic = kafka.create_topic(unique("sem-down"), partitions=2)
    n = 100
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 2) for i in range(n)))
    group = unique("sem-g")
    cfg = bridge_config(group=group, retry={"max_attempts": 2, "initial_backoff": 0.02,
                                            "max_backoff": 0.1},
                        routes=[{"topic": topic, "destinations": [
                            {"kind": "direct-http", "url": f"http://127.0.0.1:{port}/hook"}]}])
    with running_bridge(cfg, kafka.bootstrap) as rb:
        wait_until(lambda: rb.bridge.stats.retries, until=lambda r: r >= 5 * n,
                   what=f"{5 * n} retries")
        assert rb.error is None and rb.bridge.stats.dead_lettered == 0
        ep = endpoint_factory(port=port)  # back up
        got = settle_exactly(ep, n)
        kafka.wait_committed(group, topic, 2)
        rb.stop()
    assert len(got) == n
