"""Chaos on the QStash side of the bridge: the local QStash server killed with messages
accepted and undelivered, connections to it that hang or stop mid-answer, and a bad network
between QStash and the endpoint. Real broker, the local QStash server, real endpoints."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from migrator.config import QStashConnection
from tests.bridge.harness import bridge_config
from tests.chaos.checks import (
    assert_running,
    bridge_with_metrics,
    free_port,
    offsets_by_partition,
    readyz,
    settle,
    wait_for,
)
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.faultproxy import HANG, PASS, RESET, FaultProxy, cut, latency
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.qstash import QStashServer

pytestmark = [pytest.mark.stack, pytest.mark.qstash, pytest.mark.chaos]


def test_qstash_killed_with_messages_accepted_and_undelivered_loses_none(
    kafka: KafkaKit, qstash_server_factory: Callable[..., QStashServer],
    endpoint: RecordingEndpoint, tmp_path: Path,
) -> None:
    """kill -9 of the QStash server while it holds accepted messages (each delayed 1 s), then a
    restart on the same file and port: every accepted message is still delivered, the bridge
    holds its records meanwhile (outage, not dead letters) and resumes. A message whose
    delivery was under way at the kill may reach the endpoint twice (QStash is at least once
    to its endpoints): such a copy carries the same Upstash-Message-Id, so the endpoint can
    drop it; the bridge's own replays are absorbed by deduplication ids."""
    port = free_port()
    db = str(tmp_path / "qstash.db")
    server = qstash_server_factory(db=db, port=port)
    topic = kafka.create_topic(unique("chaos-qkill"), partitions=3)
    n, half = 600, 300
    kafka.produce(topic, (Rec(f"v{i}", key=f"k{i}", partition=i % 3) for i in range(half)))
    group = unique("chaos-g")
    cfg = bridge_config(group=group, batch={"count": 20, "linger_ms": 5},
                        qstash={"request_timeout": 2},
                        routes=[{"topic": topic, "destinations": [
                            {"kind": "publish-url", "url": endpoint.url + "/hook",
                             "delay": "1s", "retries": 5}]}])
    with bridge_with_metrics(cfg, kafka, server.connection) as (rb, metrics_port):
        wait_for("the bridge to have the first half accepted by QStash",
                 lambda: rb.bridge.stats.delivered, lambda d: d >= half)
        server.kill()
        accepted = rb.bridge.stats.delivered
        at_endpoint = len(endpoint.requests)
        assert accepted - at_endpoint > 0, (accepted, at_endpoint)  # accepted, undelivered
        # traffic keeps coming while QStash is down
        kafka.produce(topic, (Rec(f"v{i}", key=f"k{i}", partition=i % 3)
                              for i in range(half, n)))
        wait_for("/readyz to report QStash unavailable", lambda: readyz(metrics_port),
                 lambda r: r[0] == 503 and "unavailable" in r[1])
        time.sleep(2)  # down for a while: the bridge holds, retries, and keeps running
        assert_running(rb)
        assert rb.bridge.stats.dead_lettered == 0
        restarted = qstash_server_factory(
            db=db, port=port, token=server.token,
            current_signing_key=server.current_signing_key,
            next_signing_key=server.next_signing_key)
        assert restarted.url == server.url
        t0 = time.monotonic()
        wait_for("the bridge to resume", lambda: rb.bridge.stats.delivered, lambda d: d == n,
                 timeout=90)
        t1 = time.monotonic()
        outcome = settle(endpoint, n)
        print(f"\nresumed in {t1 - t0:.1f}s, endpoint complete {time.monotonic() - t1:.1f}s later")
        wait_for("committed offsets at the end", lambda: kafka.committed(group, topic, 3),
                 lambda c: c == kafka.end_offsets(topic, 3))
        assert readyz(metrics_port)[0] == 200
        assert_running(rb)
        rb.stop()
    assert outcome.lost == 0, outcome
    ids: dict[tuple[int, int], set[str]] = {}
    for r in endpoint.requests:
        key = (int(r.headers["kafka-partition"]), int(r.headers["kafka-offset"]))
        ids.setdefault(key, set()).add(r.headers["upstash-message-id"])
    # a redelivered copy is the same QStash message, never a second one for the record
    assert all(len(v) == 1 for v in ids.values()), [k for k, v in ids.items() if len(v) > 1][:5]
    # duplicates only from deliveries under way at the kill, never a replay of the backlog
    assert outcome.duplicates <= 50, outcome
    print(f"\nqstash kill -9: accepted={accepted} at_endpoint_at_kill={at_endpoint} {outcome}")


def test_hung_and_cut_connections_to_qstash_end_in_timeouts_and_retries(
    kafka: KafkaKit, qstash_server: QStashServer, endpoint: RecordingEndpoint,
    fault_proxy_factory: type[FaultProxy],
) -> None:
    """A proxy between the bridge and QStash accepts and never answers, then forwards requests
    but stops mid-answer: each ends in the request timeout and a retry, never a stuck bridge;
    /readyz says stalled, then unavailable, then ready; every record arrives once (a batch
    QStash accepted whose answer was cut is sent again and deduplicated)."""
    proxy = fault_proxy_factory.to_url(qstash_server.url)
    topic = kafka.create_topic(unique("chaos-qhang"), partitions=2)
    n = 400
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 2) for i in range(n)))
    group = unique("chaos-g")
    cfg = bridge_config(group=group, batch={"count": 10, "linger_ms": 5},
                        in_flight={"batches": 2},
                        qstash={"request_timeout": 3},
                        routes=[{"topic": topic, "destinations": [
                            {"kind": "publish-url", "url": endpoint.url + "/hook"}]}])
    conn = QStashConnection(url=proxy.url, token=qstash_server.connection.token)
    with bridge_with_metrics(cfg, kafka, conn, stall_after=1.0) as (rb, metrics_port):
        stats = rb.bridge.stats
        wait_for("first deliveries", lambda: stats.delivered, lambda d: d >= 40)
        proxy.set(HANG)
        wait_for("/readyz to report the stall", lambda: readyz(metrics_port),
                 lambda r: r[0] == 503 and r[1].startswith("stalled"), timeout=30)
        stalled_at = stats.delivered
        # within a few request timeouts (3 s), not the 30 s default: the setting is applied
        wait_for("/readyz to report QStash unavailable after the timeout",
                 lambda: readyz(metrics_port), lambda r: "unavailable" in r[1], timeout=15)
        retries = wait_for("retries of the hung batches", lambda: stats.retries,
                           lambda r: r > 0)
        assert_running(rb)
        assert stats.delivered == stalled_at  # nothing got through the hang
        proxy.set(PASS)
        wait_for("deliveries to resume", lambda: stats.delivered, lambda d: d > stalled_at + 40)
        wait_for("/readyz ready again", lambda: readyz(metrics_port), lambda r: r[0] == 200)
        proxy.set(cut(0))  # requests reach QStash, answers never come back
        wait_for("retries of batches whose answers were cut", lambda: stats.retries,
                 lambda r: r > retries)
        assert_running(rb)
        proxy.set(PASS)
        outcome = settle(endpoint, n)
        wait_for("committed offsets at the end", lambda: kafka.committed(group, topic, 2),
                 lambda c: c == kafka.end_offsets(topic, 2))
        assert readyz(metrics_port)[0] == 200
        final = rb.stop()
    assert outcome.lost == 0 and outcome.duplicates == 0, outcome
    assert final.dead_lettered == 0 and proxy.hung >= 1


def test_latency_resets_and_cuts_between_qstash_and_the_endpoint(
    kafka: KafkaKit, qstash_server_factory: Callable[..., QStashServer],
    endpoint: RecordingEndpoint, fault_proxy_factory: type[FaultProxy],
) -> None:
    """QStash delivers through a proxy that adds latency, resets connections, then cuts
    answers: QStash retries; every record arrives, in partition order on FIFO queues, and a
    record seen twice (its answer was cut after the endpoint had it) carries the same
    Upstash-Message-Id both times. QStash's retries (40, 500 ms apart: a server with backoff
    scale 1, as the scale also shrinks Upstash-Retry-Delay) outlast the faults:
    with fewer, messages land in QStash's DLQ, which is QStash's to report, not the bridge's
    (the failure message then says how many)."""
    qstash_server = qstash_server_factory(backoff_scale=1.0)
    proxy = fault_proxy_factory.to_url(endpoint.url)
    topic = kafka.create_topic(unique("chaos-qnet"), partitions=2)
    n = 300
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 2) for i in range(n)))
    group = unique("chaos-g")
    cfg = bridge_config(group=group, batch={"count": 10, "linger_ms": 5},
                        routes=[{"topic": topic, "ordered": True, "destinations": [
                            {"kind": "enqueue-queue", "queue": unique("cq") + "-{partition}",
                             "url": proxy.url + "/hook", "retries": 40, "timeout": "1s",
                             "retry_delay": "500"}]}])
    with bridge_with_metrics(cfg, kafka, qstash_server.connection) as (rb, _port):
        proxy.set(latency(0.05))
        wait_for("deliveries through latency", lambda: len(endpoint.requests),
                 lambda c: c >= 40)
        proxy.set(RESET)
        wait_for("connections reset", lambda: proxy.resets, lambda r: r >= 5)
        time.sleep(0.5)
        proxy.set(cut(0))
        before = len(endpoint.requests)
        wait_for("a request reaching the endpoint with its answer cut",
                 lambda: len(endpoint.requests), lambda c: c > before)
        time.sleep(1.5)  # past the 1 s Upstash-Timeout: QStash retries
        proxy.set(PASS)
        try:
            outcome = settle(endpoint, n, timeout=60)
        except AssertionError as exc:
            dlq = httpx.get(qstash_server.url + "/v2/dlq", headers=qstash_server.headers).json()
            mine = [m for m in dlq.get("messages", []) if proxy.url in m.get("url", "")]
            raise AssertionError(f"{exc}; QStash DLQ holds {len(mine)} of them: "
                                 f"{[m.get('responseStatus') for m in mine][:5]} "
                                 f"{[m.get('error', '')[:80] for m in mine][:3]}") from None
        wait_for("committed offsets at the end", lambda: kafka.committed(group, topic, 2),
                 lambda c: c == kafka.end_offsets(topic, 2))
        assert_running(rb)
        rb.stop()
    assert outcome.lost == 0, outcome
    for p, offsets in offsets_by_partition(endpoint).items():
        firsts = list(dict.fromkeys(offsets))  # a retried message may repeat, never reorder
        assert firsts == sorted(firsts), f"partition {p} out of order"
    ids: dict[tuple[int, int], set[str]] = {}
    for r in endpoint.requests:
        ids.setdefault((int(r.headers["kafka-partition"]), int(r.headers["kafka-offset"])),
                       set()).add(r.headers["upstash-message-id"])
    assert all(len(v) == 1 for v in ids.values())
    print(f"\nqstash->endpoint faults: resets={proxy.resets} {outcome}")
