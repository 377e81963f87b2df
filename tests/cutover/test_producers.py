"""The producers' move: `migrator cutover producers TOPIC` refuses while a real producer writes
and says go once it stopped and the bridge drained; the bridge's header-derived dedup id makes
an event published both through Kafka and directly arrive once."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.sink import Record
from tests.cutover.estate import BEFORE, HANDOFF, Estate
from tests.cutover.harness import KeepProducing, run_cli, wait_for
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec
from tests.fixtures.qstash import QStashServer
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(120)


def test_producers_refuses_while_a_producer_writes_then_says_go_after_the_bridge_drains(
    kafka: KafkaKit, kafka_stack: EstateInfo,
    endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    server = qstash_server_factory()
    endpoint = endpoint_factory()
    est = Estate(kafka, kafka_stack.bootstrap_servers, tmp_path, [
        {"kind": "publish-url", "url": endpoint.url,
         "flow_control": {"key": "p-{topic}", "parallelism": 4}}], server)
    producer = KeepProducing(kafka_stack.bootstrap_servers, {est.topic: 2}, rate=40)
    try:
        with est.switched():
            r = run_cli("cutover", "producers", est.topic, "--config", str(est.path),
                        "--window", "2s", "--timeout", "5s")
            assert r.returncode == 11, r.stderr
            assert "Kafka producers still write" in r.stderr and f"{est.topic}[" in r.stderr, \
                r.stderr
            assert "Traceback" not in r.stderr
            producer.stop()
            r = run_cli("cutover", "producers", est.topic, "--config", str(est.path),
                        "--window", "2s", "--timeout", "60s")
            assert r.returncode == 0, r.stderr
            assert "Publish directly to QStash now" in r.stdout, r.stdout
            # its "go" means delivered: every record since the hand-off reached the endpoint
            ends = est.ends()
            want = sum(e - HANDOFF for e in ends.values())
            rc, report, err = est.verify()
            assert rc == 0 and report["totals"]["delivered"] == want, (err, report["totals"])
        r = run_cli("cutover", "producers", "no-such-topic", "--config", str(est.path))
        assert r.returncode == 3 and "no route reads topic" in r.stderr, r.stderr
    finally:
        producer.stop()
        est.close()


def test_header_dedup_id_delivers_an_event_published_both_ways_once(
    kafka: KafkaKit, kafka_stack: EstateInfo,
    endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    from connectors.qstash_sink import header_dedup_id

    server = qstash_server_factory()
    endpoint = endpoint_factory()
    est = Estate(kafka, kafka_stack.bootstrap_servers, tmp_path, [
        {"kind": "publish-url", "url": endpoint.url, "dedup_id_header": "event-id"}], server)
    client = server.client()
    unsafe = "order 8/b"
    hashed = "evt-" + hashlib.sha256(unsafe.encode()).hexdigest()[:40]
    assert header_dedup_id(Record("t", 0, 0, None, b"", [("event-id", unsafe.encode())], None),
                           "event-id") == hashed
    try:
        with est.switched():
            # the application already published order-7 directly (the producers' move)...
            client.message.publish(url=endpoint.url, body="direct order-7",
                                   deduplication_id="order-7")
            wait_for(lambda: any(r.body == b"direct order-7" for r in endpoint.requests),
                     lambda: "the direct publish was not delivered")
            # ...and its Kafka producer wrote the same event too, plus two more
            kafka.produce(est.topic, [
                Rec("kafka order-7", headers=(("event-id", "order-7"),), partition=0),
                Rec("kafka order-8", headers=(("event-id", unsafe),), partition=0),
                Rec("kafka no-id", partition=1)])
            est.await_committed()
            wait_for(lambda: {b"kafka order-8", b"kafka no-id"} <= {r.body for r in
                                                                    endpoint.requests},
                     lambda: f"endpoint got {[r.body for r in endpoint.requests][-5:]}")
            # order-8 published directly after it was bridged: dropped too
            reply = client.message.publish(url=endpoint.url, body="direct order-8",
                                           deduplication_id=hashed)
            assert reply.deduplicated, reply
            time.sleep(1.0)
        bodies = [r.body for r in endpoint.requests]
        assert bodies.count(b"direct order-7") == 1
        assert b"kafka order-7" not in bodies, "the event arrived twice"
        assert bodies.count(b"kafka order-8") == 1 and b"direct order-8" not in bodies
        assert bodies.count(b"kafka no-id") == 1
        assert len(bodies) == 2 * (BEFORE - HANDOFF) + 3
    finally:
        est.close()
