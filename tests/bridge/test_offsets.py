"""Offsets on the real broker: graceful stop commits exactly the delivered prefix; start
positions (another group's offsets, latest, a timestamp); Avro decoding end to end."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.bridge.harness import BridgeProcess, bridge_config, running_bridge, wait_until
from tests.fixtures.endpoint import RecordingEndpoint, Reply
from tests.fixtures.kafka import KafkaKit, Rec, unique

pytestmark = pytest.mark.stack


def offsets_by_partition(ep: RecordingEndpoint) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for r in ep.requests:
        out.setdefault(int(r.headers["kafka-partition"]), set()).add(int(r.headers["kafka-offset"]))
    return out


def test_sigterm_commits_exactly_the_delivered_prefix(
    kafka: KafkaKit, endpoint_factory: Any, tmp_path: Path
) -> None:
    topic = kafka.create_topic(unique("off-term"), partitions=2)
    n = 2000
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 2) for i in range(n)))

    def slow(_req: Any) -> Reply:
        time.sleep(0.004)
        return Reply()

    ep = endpoint_factory(slow)
    group = unique("off-g")
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": kafka.bootstrap}, "group": group,
        "batch": {"count": 20, "linger_ms": 5}, "in_flight": {"batches": 4, "records": 400},
        "routes": [{"topic": topic, "destinations": [{"kind": "direct-http", "url": ep.url}]}],
    }))
    proc = BridgeProcess(str(path), {})
    wait_until(lambda: len(ep.requests), 60, until=lambda k: k >= 200, what="200 requests",
               context=proc.output)
    assert proc.terminate() == 0, proc.output()
    assert "bridge stopped" in proc.output()
    committed = {p: max(0, o) for p, o in kafka.committed(group, topic, 2).items()}  # -1001: none
    delivered = offsets_by_partition(ep)
    for p in (0, 1):
        # everything below the committed offset was delivered, and nothing beyond it
        assert delivered.get(p, set()) == set(range(committed[p])), (p, committed[p])
    assert 0 < sum(committed.values()) <= n


def test_start_from_group_starts_at_the_old_groups_offsets(
    kafka: KafkaKit, endpoint: RecordingEndpoint
) -> None:
    topic = kafka.create_topic(unique("off-from"), partitions=2)
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 2) for i in range(100)))
    old = unique("old-g")
    kafka.commit_group(old, {(topic, 0): 30, (topic, 1): 45})
    cfg = bridge_config(group=unique("new-g"), start="start_from_group", start_from_group=old,
                        routes=[{"topic": topic, "destinations": [
                            {"kind": "direct-http", "url": endpoint.url}]}])
    with running_bridge(cfg, kafka.bootstrap) as rb:
        wait_until(lambda: rb.bridge.stats.delivered, until=lambda d: d >= 20 + 5,
                   what="25 delivered")
        time.sleep(0.5)
        rb.stop()
    got = offsets_by_partition(endpoint)
    assert got == {0: set(range(30, 50)), 1: set(range(45, 50))}


def test_start_latest_and_timestamp(kafka: KafkaKit, endpoint_factory: Any) -> None:
    topic = kafka.create_topic(unique("off-pos"), partitions=1)
    kafka.produce(topic, (Rec(f"old{i}") for i in range(10)))
    time.sleep(0.05)
    cut = time.time()
    time.sleep(0.05)
    kafka.produce(topic, (Rec(f"new{i}") for i in range(5)))
    from datetime import UTC, datetime

    ep = endpoint_factory()
    cfg = bridge_config(group=unique("g"), start="timestamp",
                        start_timestamp=datetime.fromtimestamp(cut, UTC).isoformat(),
                        routes=[{"topic": topic, "destinations": [
                            {"kind": "direct-http", "url": ep.url}]}])
    with running_bridge(cfg, kafka.bootstrap) as rb:
        wait_until(lambda: rb.bridge.stats.delivered, until=lambda d: d >= 5, what="5 delivered")
        time.sleep(0.3)
        rb.stop()
    assert sorted(r.body for r in ep.requests) == [f"new{i}".encode() for i in range(5)]

    ep2 = endpoint_factory()
    cfg = bridge_config(group=unique("g"), start="latest", routes=[{"topic": topic,
                        "destinations": [{"kind": "direct-http", "url": ep2.url}]}])
    with running_bridge(cfg, kafka.bootstrap) as rb:
        wait_until(lambda: rb.bridge.metrics.ready, what="the bridge to be ready")
        time.sleep(1.0)
        kafka.produce(topic, [Rec("after")])
        wait_until(lambda: rb.bridge.stats.delivered, until=lambda d: d >= 1, what="1 delivered")
        rb.stop()
    assert [r.body for r in ep2.requests] == [b"after"]


AVRO = json.dumps({
    "type": "record", "name": "Payment", "fields": [
        {"name": "id", "type": "string"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal",
                                     "precision": 12, "scale": 2}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ]})


@pytest.mark.parametrize("decimal", ["number", "string"])
def test_avro_decimal_and_timestamp_arrive_as_json(
    kafka: KafkaKit, kafka_stack: Any, endpoint_factory: Any, decimal: str
) -> None:
    from datetime import UTC, date, datetime
    from decimal import Decimal

    topic = kafka.create_topic(unique("off-avro"), partitions=1)
    dlq = kafka.create_topic(unique("off-avro-dlq"), partitions=1)
    ser = kafka.avro_serializer(AVRO)
    at = datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)
    kafka.produce_serialized(topic, ser, [
        {"id": "p1", "amount": Decimal("1234567890.12"), "at": at, "day": date(2026, 3, 1),
         "note": None},
        {"id": "p2", "amount": Decimal("-0.05"), "at": at, "day": date(2026, 3, 2), "note": "x"},
    ])
    kafka.produce(topic, [Rec(b"not framed")])
    ep = endpoint_factory()
    cfg = bridge_config(group=unique("g"), dead_letter={"topic": dlq}, routes=[{
        "topic": topic,
        "payload": {"mode": "decode", "decimal": decimal,
                    "schema_registry_url": kafka_stack.schema_registry_url},
        "destinations": [{"kind": "direct-http", "url": ep.url}]}])
    with running_bridge(cfg, kafka.bootstrap) as rb:
        wait_until(lambda: (rb.bridge.stats.delivered, rb.bridge.stats.dead_lettered),
                   until=lambda s: sum(s) >= 3, what="3 delivered or dead-lettered")
        stats = rb.stop()
    assert stats.dead_lettered == 1
    bodies = sorted(r.body for r in ep.requests)
    assert ep.requests[0].headers["content-type"] == "application/json"
    amount = '1234567890.12' if decimal == "number" else '"1234567890.12"'
    assert bodies[0] == (
        b'{"id":"p1","amount":' + amount.encode() + b',"at":"2026-03-01T12:30:15.123000Z",'
        b'"day":"2026-03-01","note":null}'
    )
    assert json.loads(bodies[1])["amount"] == (-0.05 if decimal == "number" else "-0.05")
    dead = kafka.consume_all(dlq, 1)
    assert dict(dead[0].headers())["dead-letter-reason"] == b"undecodable"


def test_second_sigint_exits_at_once_without_committing_undelivered(
    kafka: KafkaKit, endpoint_factory: Any, tmp_path: Path
) -> None:
    import signal

    topic = kafka.create_topic(unique("off-int"), partitions=1)
    kafka.produce(topic, (Rec(f"v{i}") for i in range(500)))

    def very_slow(_req: Any) -> Reply:
        time.sleep(0.3)
        return Reply()

    ep = endpoint_factory(very_slow)
    group = unique("off-g")
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": kafka.bootstrap}, "group": group, "shutdown_deadline": 120,
        "routes": [{"topic": topic, "destinations": [{"kind": "direct-http", "url": ep.url}]}],
    }))
    proc = BridgeProcess(str(path), {}, "--json-logs")
    wait_until(lambda: len(ep.requests), 60, until=lambda k: k >= 3, what="3 requests",
               context=proc.output)
    proc.process.send_signal(signal.SIGINT)
    wait_until(lambda: "stopping: draining" in proc.output(), 30, what="'stopping: draining' logged",
               context=proc.output)
    proc.process.send_signal(signal.SIGINT)
    assert proc.process.wait(30) == 130
    log_lines = [json.loads(line) for line in proc.output().splitlines() if line.startswith("{")]
    assert any("stopping" in line["message"] for line in log_lines)
    committed = max(0, kafka.committed(group, topic, 1)[0])
    assert committed < 500
    delivered = {int(r.headers["kafka-offset"]) for r in ep.requests}
    assert set(range(committed)) <= delivered


def test_protobuf_with_timestamp_and_decimal_arrives_as_json(
    kafka: KafkaKit, kafka_stack: Any, endpoint: RecordingEndpoint
) -> None:
    from tests.connectors.proto_helpers import EXPECTED, payment, payment_class

    topic = kafka.create_topic(unique("off-proto"), partitions=1)
    cls = payment_class(unique("pay").replace("-", "_"))
    kafka.produce_serialized(topic, kafka.protobuf_serializer(cls), [payment(cls)])
    cfg = bridge_config(group=unique("g"), routes=[{
        "topic": topic,
        "payload": {"mode": "decode", "schema_registry_url": kafka_stack.schema_registry_url},
        "destinations": [{"kind": "direct-http", "url": endpoint.url}]}])
    with running_bridge(cfg, kafka.bootstrap) as rb:
        wait_until(lambda: rb.bridge.stats.delivered, until=lambda d: d >= 1, what="1 delivered")
        rb.stop()
    assert endpoint.requests[0].body.decode() == EXPECTED % "1234567890.12"


def test_a_registry_outage_holds_the_partition_instead_of_dead_lettering(
    kafka: KafkaKit, kafka_stack: Any, endpoint_factory: Any, request: pytest.FixtureRequest
) -> None:
    """The registry not answering says nothing about the records: the partition is sought back
    to the first undecoded record and held, then read again; nothing is dead-lettered, every
    record arrives once and in order. An unknown schema id (404) is still the record's fault."""
    import threading

    from connectors.codecs import registry_lookup
    from migrator.bridge.runner import Bridge
    from migrator.config import KafkaConnection
    from tests.bridge.harness import FAST_GROUP, RunningBridge

    topic = kafka.create_topic(unique("off-regdown"), partitions=2)
    dlq = kafka.create_topic(unique("off-regdown-dlq"), partitions=1)
    ser = kafka.avro_serializer(json.dumps({"type": "record", "name": "N", "fields": [
        {"name": "n", "type": "int"}]}))
    n = 40
    kafka.produce_serialized(topic, ser, [{"n": i} for i in range(n)])
    kafka.produce(topic, [Rec(b"\x00\x00\x0f\x42\x40rest", partition=0)])  # schema id 1,000,000
    real = registry_lookup(kafka_stack.schema_registry_url)
    request.addfinalizer(real.close)
    lock = threading.Lock()
    failures: list[int] = []

    def flaky(schema_id: int) -> Any:
        with lock:
            if len(failures) < 4:
                failures.append(schema_id)
                import httpx

                raise httpx.ConnectError("registry down (test)")
        return real(schema_id)

    ep = endpoint_factory()
    cfg = bridge_config(group=unique("g"), dead_letter={"topic": dlq},
                        retry={"initial_backoff": 0.2, "max_backoff": 0.5},
                        routes=[{"topic": topic, "ordered": True, "payload": {"mode": "decode"},
                                 "destinations": [{"kind": "direct-http", "url": ep.url}]}])
    bridge = Bridge(cfg, KafkaConnection(bootstrap_servers=kafka.bootstrap),
                    consumer_overrides=FAST_GROUP, schema_lookup=flaky)
    rb = RunningBridge(bridge)
    try:
        wait_until(lambda: (bridge.stats.delivered, bridge.stats.dead_lettered),
                   until=lambda s: sum(s) >= n + 1, what=f"{n + 1} delivered or dead-lettered")
    finally:
        stats = rb.stop()
    assert len(failures) == 4
    assert (stats.delivered, stats.dead_lettered) == (n, 1)  # only the unknown schema id
    got = [json.loads(r.body)["n"] for r in ep.requests]
    assert sorted(got) == list(range(n))  # once each
    for partition in (0, 1):  # and in offset order per partition (an ordered route)
        offsets = [int(r.headers["kafka-offset"]) for r in ep.requests
                   if r.headers["kafka-partition"] == str(partition)]
        assert offsets == sorted(offsets)
    dead = kafka.consume_all(dlq, 1)
    assert dict(dead[0].headers())["dead-letter-reason"] == b"undecodable"
    assert dead[0].value() == b"\x00\x00\x0f\x42\x40rest"


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_stop_signal_right_after_spawn_is_a_clean_exit_and_loses_nothing(
    kafka: KafkaKit, endpoint: RecordingEndpoint, tmp_path: Path, signum: str
) -> None:
    """A stop sent while the process still imports (no handler yet) is honoured once the bridge
    exists: drain, commit, exit 0; a second bridge then delivers the rest, each record once."""
    import signal

    topic = kafka.create_topic(unique("off-early"), partitions=2)
    n = 300
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 2) for i in range(n)))
    group = unique("off-g")
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": kafka.bootstrap}, "group": group,
        "batch": {"count": 20, "linger_ms": 5},
        "routes": [{"topic": topic, "destinations": [{"kind": "direct-http", "url": endpoint.url}]}],
    }))
    early = BridgeProcess(str(path), {})
    early.process.send_signal(getattr(signal, signum))  # before Python got to any of our code
    try:
        assert early.process.wait(60) == 0, early.output()
    finally:
        early.kill()  # only if it did not stop
    assert "bridge stopped" in early.output()
    committed = {p: max(0, o) for p, o in kafka.committed(group, topic, 2).items()}
    delivered = offsets_by_partition(endpoint)
    for p in (0, 1):  # whatever it committed it delivered
        assert set(range(committed[p])) <= delivered.get(p, set()), (p, committed[p])

    rest = BridgeProcess(str(path), {})
    try:
        wait_until(lambda: kafka.committed(group, topic, 2), 60,
                   until=lambda c: c == kafka.end_offsets(topic, 2), what="all committed",
                   context=rest.output)
    finally:
        assert rest.terminate() == 0, rest.output()
    keys = [(int(r.headers["kafka-partition"]), int(r.headers["kafka-offset"]))
            for r in endpoint.requests]
    assert len(keys) == n and len(set(keys)) == n, (len(keys), len(set(keys)))
