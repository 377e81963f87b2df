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
from tests.cutover.estate import BEFORE, HANDOFF, Estate, await_endpoint, publish_url_estate
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
    est, _server, _endpoint = publish_url_estate(
        kafka, kafka_stack, endpoint_factory, qstash_server_factory, tmp_path,
        flow_control={"key": "p-{topic}", "parallelism": 4})
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
    endpoint, second = endpoint_factory(), endpoint_factory()
    est = Estate(kafka, kafka_stack.bootstrap_servers, tmp_path, [
        {"kind": "publish-url", "url": endpoint.url, "dedup_id_header": "event-id"},
        # a second destination of the topic: the same event id must not drop its copy
        {"kind": "publish-url", "url": second.url, "dedup_id_header": "event-id"}], server)
    client = server.client()
    unsafe = "order 8/b"
    tag = hashlib.sha256(endpoint.url.encode()).hexdigest()[:10]
    hashed = "evt-" + hashlib.sha256(unsafe.encode()).hexdigest()[:40] + "-" + tag
    assert header_dedup_id(Record("t", 0, 0, None, b"", [("event-id", unsafe.encode())], None),
                           "event-id", endpoint.url) == hashed
    try:
        with est.switched():
            # the application already published order-7 directly (the producers' move)...
            client.message.publish(url=endpoint.url, body="direct order-7",
                                   deduplication_id=f"order-7-{tag}")
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
        wait_for(lambda: len(second.requests) >= 2 * (BEFORE - HANDOFF) + 3,
                 lambda: f"second got {len(second.requests)}")
        others = [r.body for r in second.requests]
        for body in (b"kafka order-7", b"kafka order-8", b"kafka no-id"):
            assert others.count(body) == 1, (body, others[-5:])
    finally:
        est.close()


def test_finish_lists_what_is_outstanding_then_removes_exactly_what_was_routed(
    kafka: KafkaKit, kafka_stack: EstateInfo,
    endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    from migrator.config import KafkaConnection
    from migrator.kafka.admin import KafkaAdmin
    from tests.fixtures.kafka import unique

    est, server, endpoint = publish_url_estate(
        kafka, kafka_stack, endpoint_factory, qstash_server_factory, tmp_path)
    bystander = kafka.create_topic(unique("bystander"), partitions=1)
    admin = KafkaAdmin(KafkaConnection(bootstrap_servers=kafka_stack.bootstrap_servers))
    try:
        r = run_cli("cutover", "finish", "--config", str(est.path), "--window", "1s")
        assert r.returncode == 1, r.stderr
        assert f"group {est.group!r} is prepared, not switched" in r.stdout, r.stdout
        with est.switched():
            est.produce([f"live-{i}" for i in range(10)])
            est.await_committed()
            await_endpoint(endpoint, 10)
        r = run_cli("cutover", "finish", "--config", str(est.path), "--window", "1s",
                    "--delete")
        assert r.returncode == 6 and "--allow-destructive" in r.stderr, r.stderr
        r = run_cli("cutover", "finish", "--config", str(est.path), "--window", "1s")
        assert r.returncode == 0, r.stdout + r.stderr
        bgroup = est.coord.load(est.group).bridge_group
        assert f"--delete --topic {est.topic}" in r.stdout
        assert f"--delete --group {est.group}" in r.stdout
        assert f"--delete --group {bgroup}" in r.stdout
        assert bystander not in r.stdout and server.token not in r.stdout + r.stderr
        r = run_cli("cutover", "finish", "--config", str(est.path), "--window", "1s",
                    "--delete", "--allow-destructive")
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"deleted topic {est.topic}" in r.stdout
        wait_for(lambda: est.topic not in admin.describe_topics([est.topic, bystander]),
                 lambda: "the routed topic is still there")
        topics = admin.describe_topics([est.topic, bystander, est.cfg.cutover_topic])
        assert bystander in topics and est.cfg.cutover_topic in topics
        groups = {g.group_id for g in admin.list_groups()}
        assert est.group not in groups and bgroup not in groups
    finally:
        admin.close()
        est.close()


def test_producers_refuses_while_the_bridge_lags_or_qstash_still_holds_messages(
    kafka: KafkaKit, kafka_stack: EstateInfo,
    endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    from tests.fixtures.endpoint import Reply

    est, _server, endpoint = publish_url_estate(
        kafka, kafka_stack, endpoint_factory, qstash_server_factory, tmp_path,
        retries=2, retry_delay="3600000",
        flow_control={"key": "p-{topic}", "parallelism": 4},
        responder=lambda req: Reply(500, b"later") if req.body.startswith(b"stuck-") else Reply())
    try:
        with est.switched():
            est.produce(["stuck-1"], partition=0)
            est.await_committed()
            wait_for(lambda: any(r.body == b"stuck-1" for r in endpoint.requests),
                     lambda: "stuck-1 never reached the endpoint")
            r = run_cli("cutover", "producers", est.topic, "--config", str(est.path),
                        "--window", "1s", "--timeout", "4s")
            assert r.returncode == 11, r.stderr
            assert "QStash still holds 1 message(s) labelled" in r.stderr, r.stderr
            assert "Kafka producers still write" not in r.stderr
        est.produce(["late-1", "late-2"])  # no bridge runs: its group lags
        r = run_cli("cutover", "producers", est.topic, "--config", str(est.path),
                    "--window", "1s", "--timeout", "4s")
        assert r.returncode == 11, r.stderr
        bgroup = est.coord.load(est.group).bridge_group
        assert f"group {bgroup} has lag 2" in r.stderr, r.stderr
    finally:
        est.close()
