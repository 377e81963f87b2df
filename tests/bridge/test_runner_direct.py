"""The bridge end to end on the real broker with a real endpoint, direct HTTP mode."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.bridge.harness import bridge_config, running_bridge, wait_until
from tests.fixtures.endpoint import Reply
from tests.fixtures.kafka import KafkaKit, Rec, unique

pytestmark = pytest.mark.stack


def test_direct_delivers_every_record_once_and_commits_all(kafka, endpoint) -> None:
    kit: KafkaKit = kafka
    topic = kit.create_topic(unique("bridge-direct"), partitions=3)
    n = 300
    kit.produce(topic, (Rec(f'{{"n":{i}}}', key=f"k{i % 7}", headers=[("h1", b"v")], partition=i % 3)
                        for i in range(n)))
    group = unique("bridge-g")
    cfg = bridge_config(group=group, routes=[{"topic": topic, "destinations": [
        {"kind": "direct-http", "url": endpoint.url + "/hook", "headers": {"X-Team": "pay"}}]}])
    with running_bridge(cfg, kit.bootstrap) as rb:
        endpoint.wait_for(n, timeout=60)
        stats = rb.stop()
    reqs = endpoint.requests
    keys = Counter((r.headers["kafka-partition"], r.headers["kafka-offset"]) for r in reqs)
    assert len(keys) == n and max(keys.values()) == 1
    first = reqs[0]
    assert first.headers["x-team"] == "pay"
    assert first.headers["kafka-header-h1"] == "v"
    assert first.headers["kafka-topic"] == topic
    assert first.headers["idempotency-key"].startswith("kb-")
    assert stats.delivered == n
    assert kit.committed(group, topic, 3) == kit.end_offsets(topic, 3)


def test_ordered_mode_keeps_partition_order_through_retries(kafka, endpoint_factory) -> None:
    import threading

    kit: KafkaKit = kafka
    topic = kit.create_topic(unique("bridge-ordered"), partitions=2)
    n = 200
    kit.produce(topic, (Rec(str(i), partition=i % 2) for i in range(n)))
    lock = threading.Lock()
    seen: dict[int, list[tuple[int, int]]] = {0: [], 1: []}  # partition -> (offset, status)
    failed_once: set[tuple[int, int]] = set()

    def flaky(req):
        key = (int(req.headers["kafka-partition"]), int(req.headers["kafka-offset"]))
        with lock:
            status = 200
            if key[1] % 7 == 3 and key not in failed_once:
                failed_once.add(key)
                status = 503
            seen[key[0]].append((key[1], status))
        return Reply(status)

    ep = endpoint_factory(flaky)
    cfg = bridge_config(group=unique("bridge-g"), routes=[{"topic": topic, "ordered": True,
        "destinations": [{"kind": "direct-http", "url": ep.url}]}])
    with running_bridge(cfg, kit.bootstrap) as rb:
        wait_until(lambda: rb.bridge.stats.delivered, until=lambda d: d >= n, what=f"{n} delivered")
        stats = rb.stop()
    assert stats.retries > 0
    for sequence in seen.values():
        ok = [off for off, status in sequence if status == 200]
        assert ok == list(range(n // 2))  # every record once, in offset order
        for i, (off, status) in enumerate(sequence):
            if status == 503:  # nothing later was sent before the retry of this record
                assert sequence[i + 1] == (off, 200)


def test_permanent_4xx_is_dead_lettered_with_headers_while_the_rest_flows(kafka, endpoint_factory) -> None:
    kit: KafkaKit = kafka
    topic = kit.create_topic(unique("bridge-poison"), partitions=1)
    dlq = kit.create_topic(unique("bridge-dlq"), partitions=1)
    n = 50
    kit.produce(topic, (Rec(f"poison-{i}" if i % 10 == 3 else f"ok-{i}", key=f"k{i}",
                            headers=[("trace", b"t%d" % i)]) for i in range(n)))
    ep = endpoint_factory(lambda req: Reply(422, b"bad") if req.body.startswith(b"poison") else Reply())
    group = unique("bridge-g")
    cfg = bridge_config(group=group, dead_letter={"topic": dlq}, routes=[{"topic": topic,
        "destinations": [{"kind": "direct-http", "url": ep.url}]}])
    with running_bridge(cfg, kit.bootstrap) as rb:
        wait_until(lambda: (rb.bridge.stats.delivered, rb.bridge.stats.dead_lettered),
                   until=lambda s: sum(s) >= n, what=f"{n} delivered or dead-lettered")
        stats = rb.stop()
    assert stats.dead_lettered == 5 and stats.delivered == 45
    dead = kit.consume_all(dlq, 5)
    assert sorted(m.value() for m in dead) == sorted(f"poison-{i}".encode() for i in range(3, n, 10))
    by_offset = {dict(m.headers())["dead-letter-source-offset"]: m for m in dead}
    msg = by_offset[b"3"]
    h = dict(msg.headers())
    assert h["dead-letter-reason"] == b"rejected"
    assert h["dead-letter-status"] == b"422"
    assert h["dead-letter-source-topic"] == topic.encode()
    assert h["trace"] == b"t3" and msg.key() == b"k3"
    assert h["dead-letter-source-partition"] == b"0" and h["dead-letter-attempts"] == b"1"
    assert kit.committed(group, topic, 1) == {0: n}


def test_bridge_over_sasl_scram_keeps_the_password_out_of_logs(
    kafka, kafka_stack, endpoint, caplog
) -> None:
    import logging

    from migrator.bridge.runner import Bridge
    from migrator.config import KafkaConnection
    from tests.bridge.harness import FAST_GROUP, RunningBridge

    if not kafka_stack.sasl_bootstrap_servers:
        pytest.fail("the test estate has no SASL listener")
    kit: KafkaKit = kafka
    topic = kit.create_topic(unique("bridge-sasl"), partitions=1)
    kit.produce(topic, (Rec(f"v{i}") for i in range(10)))
    conn = KafkaConnection.from_properties({
        "bootstrap.servers": kafka_stack.sasl_bootstrap_servers,
        "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": kafka_stack.sasl_username, "sasl.password": kafka_stack.sasl_password,
    })
    cfg = bridge_config(group=unique("g"), routes=[{"topic": topic, "destinations": [
        {"kind": "direct-http", "url": endpoint.url}]}])
    caplog.set_level(logging.DEBUG)
    rb = RunningBridge(Bridge(cfg, conn, consumer_overrides=FAST_GROUP))
    wait_until(lambda: rb.bridge.stats.delivered, until=lambda d: d >= 10, what="10 delivered")
    rb.stop()
    assert kafka_stack.sasl_password not in caplog.text


def test_a_record_with_two_destinations_is_committed_only_when_both_accepted(
    kafka, endpoint_factory
) -> None:
    import threading

    kit: KafkaKit = kafka
    topic = kit.create_topic(unique("bridge-two"), partitions=1)
    n = 40
    kit.produce(topic, (Rec(f"v{i}") for i in range(n)))
    healthy = threading.Event()
    good = endpoint_factory()
    flaky = endpoint_factory(lambda _req: Reply() if healthy.is_set() else Reply(503))
    group = unique("bridge-g")
    cfg = bridge_config(group=group, routes=[{"topic": topic, "destinations": [
        {"kind": "direct-http", "url": good.url}, {"kind": "direct-http", "url": flaky.url}]}])
    with running_bridge(cfg, kit.bootstrap) as rb:
        good.wait_for(n)
        time.sleep(1.5)  # commits happen every second: nothing may be committed yet
        assert kit.committed(group, topic, 1)[0] < 0
        healthy.set()
        kit.wait_committed(group, topic, 1)
        stats = rb.stop()
    assert stats.delivered == 2 * n
    assert len({r.headers["idempotency-key"] for r in good.requests + flaky.requests}) == 2 * n


@pytest.mark.parametrize("policy", ["skip", "forward_empty", "dead_letter"])
def test_tombstone_policies(kafka, endpoint, policy: str) -> None:
    kit: KafkaKit = kafka
    topic = kit.create_topic(unique("bridge-tomb"), partitions=1)
    dlq = kit.create_topic(unique("bridge-tomb-dlq"), partitions=1)
    kit.produce(topic, [Rec("a", key="k"), Rec(None, key="k"), Rec("b", key="k")])
    group = unique("bridge-g")
    cfg = bridge_config(group=group, dead_letter={"topic": dlq}, routes=[{
        "topic": topic, "tombstone": policy,
        "destinations": [{"kind": "direct-http", "url": endpoint.url}]}])
    with running_bridge(cfg, kit.bootstrap) as rb:
        kit.wait_committed(group, topic, 1)
        stats = rb.stop()
    bodies = [r.body for r in sorted(endpoint.requests, key=lambda r: r.headers["kafka-offset"])]
    if policy == "forward_empty":
        assert bodies == [b"a", b"", b"b"]
    else:
        assert bodies == [b"a", b"b"]
    if policy == "dead_letter":
        (dead,) = kit.consume_all(dlq, 1)
        assert dead.value() is None and dead.key() == b"k"
        assert dict(dead.headers())["dead-letter-reason"] == b"tombstone"
    assert stats.skipped == (1 if policy == "skip" else 0)


def test_status_classification_end_to_end(kafka, endpoint_factory) -> None:
    """An endpoint mid-deploy (404 for a while: retry_on), answering 409 for duplicates
    (success_on) and 501 for one record (fail_on: dead-lettered at once, not retried)."""
    import threading

    kit: KafkaKit = kafka
    topic = kit.create_topic(unique("bridge-status"), partitions=2)
    dlq = kit.create_topic(unique("bridge-status-dlq"), partitions=1)
    n = 60
    kit.produce(topic, (Rec(str(i), partition=i % 2) for i in range(n)))
    lock = threading.Lock()
    calls: Counter[str] = Counter()
    not_found: list[str] = []

    def deploying(req):
        body = req.body.decode()
        with lock:
            calls[body] += 1
            total = sum(calls.values())
        if body == "7":
            return Reply(501)
        if total <= 20:
            with lock:
                not_found.append(body)
            return Reply(404)  # not deployed yet
        return Reply(409 if int(body) % 5 == 0 else 200)

    ep = endpoint_factory(deploying)
    group = unique("bridge-g")
    cfg = bridge_config(group=group, dead_letter={"topic": dlq}, routes=[{"topic": topic,
                        "destinations": [{"kind": "direct-http", "url": ep.url,
                                          "success_on": [409], "retry_on": [404],
                                          "fail_on": [501]}]}])
    with running_bridge(cfg, kit.bootstrap) as rb:
        kit.wait_committed(group, topic, 2)
        stats = rb.stop()
    assert stats.delivered == n - 1 and stats.dead_lettered == 1
    assert len(not_found) >= 19 and stats.retries == len(not_found)  # each 404 retried
    assert calls["7"] == 1  # fail_on: never retried
    dead = kit.consume_all(dlq, 1)
    assert [d.value() for d in dead] == [b"7"]
