"""The stack's SASL_SSL listener, as managed Kafka services offer it: TLS (the stack's CA), then
SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN. The Java client properties users already have (a JAAS line,
a PEM truststore) work unchanged: the audit reads over each mechanism, the bridge delivers over
it, and a wrong secret is refused with exit 5 in one line naming the mechanism."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from migrator.bridge.runner import Bridge
from migrator.config import KafkaConnection
from tests.bridge.harness import FAST_GROUP, RunningBridge, bridge_config, wait_until
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.stack.conftest import MECHANISMS, SaslSslBroker

pytestmark = pytest.mark.stack


def migrator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrator", *args], capture_output=True,
                          text=True, timeout=180, check=False)


@pytest.fixture
def broker(sasl_ssl_broker: SaslSslBroker) -> SaslSslBroker:
    return sasl_ssl_broker


@pytest.fixture(scope="module")
def seeded(sasl_ssl_broker: SaslSslBroker) -> str:
    broker = sasl_ssl_broker
    kit = KafkaKit(broker.bootstrap, None)
    topic = kit.create_topic(unique("saslssl"), partitions=2)
    kit.produce(topic, (Rec(f"r{i}", partition=i % 2) for i in range(40)))
    return topic


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_audit_over_sasl_ssl(broker: SaslSslBroker, seeded: str, tmp_path: Path,
                             mechanism: str) -> None:
    props = broker.properties(mechanism, tmp_path / "client.properties")
    done = migrator("audit", "--kafka-config", str(props), "--include", seeded, "--format", "json",
                    "--sample-seconds", "0", "--sample-records", "5", "--timeout", "20")
    assert done.returncode == 0, done.stderr
    (topic,) = json.loads(done.stdout)["topics"]
    assert topic["name"] == seeded
    assert sum(p["high_watermark"] for p in topic["partitions"]) == 40
    assert broker.password not in done.stdout + done.stderr


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_wrong_secret_is_exit_5_naming_the_mechanism(broker: SaslSslBroker, tmp_path: Path,
                                                      mechanism: str) -> None:
    wrong = "not-the-" + secrets.token_hex(6)
    props = broker.properties(mechanism, tmp_path / "client.properties", password=wrong)
    done = migrator("audit", "--kafka-config", str(props), "--sample-seconds", "0",
                    "--timeout", "20")
    assert done.returncode == 5, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert mechanism in lines[0], lines[0]
    assert wrong not in done.stderr + done.stdout


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_the_bridge_delivers_over_sasl_ssl(broker: SaslSslBroker, seeded: str, tmp_path: Path,
                                          endpoint: RecordingEndpoint, mechanism: str) -> None:
    connection = KafkaConnection.build(
        properties_file=broker.properties(mechanism, tmp_path / "client.properties"))
    group = unique("saslssl-g")
    cfg = bridge_config(group=group, routes=[{"topic": seeded, "destinations": [
        {"kind": "direct-http", "url": endpoint.url}]}])
    rb = RunningBridge(Bridge(cfg, connection, consumer_overrides=FAST_GROUP))
    try:
        got = endpoint.wait_for(40, timeout=90)
        assert sorted(r.body for r in got) == sorted(f"r{i}".encode() for i in range(40))
        kit = KafkaKit(broker.bootstrap, None)
        committed = wait_until(lambda: kit.committed(group, seeded, 2) == {0: 20, 1: 20}, 30)
        assert committed, kit.committed(group, seeded, 2)
    finally:
        stats = rb.stop()
    assert stats.delivered == 40 and stats.dead_lettered == 0


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_the_bridge_refuses_a_wrong_secret_with_exit_5(broker: SaslSslBroker, seeded: str,
                                                      tmp_path: Path, mechanism: str) -> None:
    wrong = "not-the-" + secrets.token_hex(6)
    props = broker.properties(mechanism, tmp_path / "client.properties", password=wrong)
    config = tmp_path / "bridge.yaml"
    config.write_text(f"group: {unique('saslssl-bad')}\nroutes:\n  - topic: {seeded}\n"
                      "    destinations: [{kind: direct-http, url: 'http://127.0.0.1:9/'}]\n")
    done = migrator("bridge", "run", "--config", str(config), "--kafka-config", str(props))
    assert done.returncode == 5, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "%3|" not in done.stderr, done.stderr  # librdkafka's raw log lines stay out
    assert mechanism in errors[0] and "SASL_SSL" in errors[0], errors[0]
    assert wrong not in done.stderr + done.stdout
