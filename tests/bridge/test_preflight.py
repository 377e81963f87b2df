"""`migrator bridge check`: start offsets and backlog as the bridge itself would see them, and
the problems that would stop it, on the real broker and the local QStash server."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from migrator.bridge.preflight import preflight
from migrator.config import KafkaConnection
from tests.bridge.harness import bridge_config, running_bridge
from tests.fixtures.cli import migrator
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique

pytestmark = pytest.mark.stack


def seeded(kafka: KafkaKit, per_partition: int = 30) -> str:
    topic = kafka.create_topic(unique("pf"), partitions=3)
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 3) for i in range(3 * per_partition)))
    return topic


def test_starts_and_backlog_agree_with_what_the_bridge_then_delivers(
    kafka: KafkaKit, endpoint: RecordingEndpoint
) -> None:
    topic = seeded(kafka)
    group, old = unique("pf-g"), unique("pf-old")
    kafka.commit_group(group, {(topic, 0): 20})  # the bridge group's own offset wins
    kafka.commit_group(old, {(topic, 0): 3, (topic, 1): 25})  # the group it replaces
    cfg = bridge_config(group=group, start="start_from_group", start_from_group=old,
                        routes=[{"topic": topic, "destinations": [
                            {"kind": "direct-http", "url": endpoint.url}]}])
    result = preflight(cfg, KafkaConnection(bootstrap_servers=kafka.bootstrap))
    assert result.problems == []
    got = {p.partition: (p.committed, p.start, p.source, p.end, p.backlog)
           for p in result.partitions}
    assert got == {0: (20, 20, "committed", 30, 10),
                   1: (None, 25, f"group {old}", 30, 5),
                   2: (None, 0, f"group {old}", 30, 30)}
    assert result.backlog == 45
    # nothing was joined or committed by the check
    assert kafka.committed(group, topic, 3) == {0: 20, 1: -1001, 2: -1001}  # -1001: none
    with running_bridge(cfg, kafka.bootstrap) as rb:
        endpoint.wait_for(result.backlog, 60)
        kafka.wait_committed(group, topic, 3)
        rb.stop()
    first: dict[int, int] = {}
    for req in endpoint.requests:
        p, o = int(req.headers["kafka-partition"]), int(req.headers["kafka-offset"])
        first[p] = min(first.get(p, o), o)
    assert len(endpoint.requests) == result.backlog
    assert first == {p.partition: p.start for p in result.partitions}


def test_latest_timestamp_and_retention(kafka: KafkaKit) -> None:
    topic = seeded(kafka)
    conn = KafkaConnection(bootstrap_servers=kafka.bootstrap)
    latest = preflight(bridge_config(group=unique("pf-g"), start="latest", routes=[
        {"topic": topic, "destinations": [{"kind": "direct-http", "url": "http://127.0.0.1:9"}]}]),
        conn)
    assert {(p.start, p.source, p.backlog) for p in latest.partitions} == {(30, "latest", 0)}
    future = preflight(bridge_config(group=unique("pf-g"), start="timestamp",
                                     start_timestamp="2100-01-01T00:00:00Z", routes=[
        {"topic": topic, "destinations": [{"kind": "direct-http", "url": "http://127.0.0.1:9"}]}]),
        conn)
    assert {(p.start, p.source) for p in future.partitions} == {(30, "timestamp 2100-01-01T00:00:00Z")}
    # retention deleted offsets 0-9 of partition 2 while the bridge group sits at 5
    group = unique("pf-g")
    kafka.commit_group(group, {(topic, 2): 5})
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    for future_ in admin.delete_records([TopicPartition(topic, 2, 10)]).values():
        future_.result(30)
    gone = preflight(bridge_config(group=group, routes=[
        {"topic": topic, "destinations": [{"kind": "direct-http", "url": "http://127.0.0.1:9"}]}]),
        conn)
    p2 = next(p for p in gone.partitions if p.partition == 2)
    assert (p2.start, p2.earliest, p2.backlog) == (5, 10, 20)
    assert len(gone.problems) == 1 and f"{topic}[2]" in gone.problems[0]
    assert "5 records are gone" in gone.problems[0]


def test_problems_exit_1_and_no_secret_is_printed(
    kafka: KafkaKit, qstash_server: Any, tmp_path: Path
) -> None:
    topic = seeded(kafka, 5)
    missing = unique("pf-missing")
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": kafka.bootstrap},
        "group": unique("pf-g"),
        "dead_letter": {"topic": unique("pf-dlq")},
        "routes": [
            {"topic": topic, "destinations": [
                {"kind": "publish-url-group", "url_group": "pf-no-such-group"},
                {"kind": "direct-http", "url": "http://svc:pa55word@127.0.0.1:9/x?token=t0p"}]},
            {"topic": missing, "destinations": [
                {"kind": "publish-url", "url": "http://127.0.0.1:9/y"}]},
        ],
    }))
    env = {"QSTASH_URL": qstash_server.url, "QSTASH_TOKEN": qstash_server.token}
    proc = migrator("bridge", "check", "--config", str(path), env=env)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    problems = [line for line in out.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 3, out
    assert any(f"routes[1].topic: topic {missing!r} does not exist" in p for p in problems)
    assert any("dead_letter.topic" in p for p in problems)
    assert any("url_group: QStash has no URL group 'pf-no-such-group'" in p for p in problems)
    assert Counter(line.split()[0] for line in out.splitlines()
                   if line.startswith(topic))[topic] == 3
    text = out + proc.stderr
    assert qstash_server.token not in text and "pa55word" not in text and "t0p" not in text
    # fixed: the same check passes
    data = yaml.safe_load(path.read_text())
    data["routes"] = data["routes"][:1]
    data["routes"][0]["destinations"] = data["routes"][0]["destinations"][1:]
    data.pop("dead_letter")
    path.write_text(yaml.safe_dump(data))
    proc = migrator("bridge", "check", "--config", str(path), "--format", "json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"backlog": 15' in proc.stdout
