"""The stack's SASL_SSL listener, as managed Kafka services offer it: TLS (the stack's CA), then
SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN. The Java client properties users already have (a JAAS line,
a PEM truststore) work unchanged: the audit reads over each mechanism, the bridge delivers over
it, and a wrong secret is refused with exit 5 in one line naming the mechanism."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrator.bridge.runner import Bridge
from migrator.config import KafkaConnection
from migrator.stack import servers
from migrator.stack.maven import resolve_jars
from migrator.stack.process import free_port, stop, wait_until
from tests.bridge.harness import FAST_GROUP, RunningBridge, bridge_config
from tests.bridge.harness import wait_until as wait_for
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.stack

MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
_MODULES = {"PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
            "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
            "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule"}


@dataclass(frozen=True)
class SaslSslBroker:
    bootstrap: str  # PLAINTEXT, to seed topics
    sasl_ssl: str
    ca_file: str
    user: str
    password: str

    def properties(self, mechanism: str, path: Path, password: str | None = None) -> Path:
        """A Java client properties file as a user of a managed service writes it."""
        path.write_text(
            f"bootstrap.servers={self.sasl_ssl}\n"
            "security.protocol=SASL_SSL\n"
            f"sasl.mechanism={mechanism}\n"
            f"sasl.jaas.config={_MODULES[mechanism]} required \\\n"
            f'    username="{self.user}" password="{password or self.password}";\n'
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={self.ca_file}\n"
        )
        return path


@pytest.fixture(scope="module")
def broker(kafka_stack: EstateInfo, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[SaslSslBroker]:
    """The session stack's SASL_SSL listener, or (a stack started before it had one) a broker of
    this module's own, formatted and started by the same stack code."""
    s = kafka_stack
    if s.sasl_ssl_bootstrap_servers and s.ssl_ca_file and s.sasl_username and s.sasl_password:
        yield SaslSslBroker(s.bootstrap_servers, s.sasl_ssl_bootstrap_servers, s.ssl_ca_file,
                            s.sasl_username, s.sasl_password)
        return
    run = tmp_path_factory.mktemp("sasl-ssl-broker")
    jars = resolve_jars(log=run / "logs" / "maven.log")
    ports = servers.BrokerPorts(free_port(), free_port(), free_port(), free_port(), free_port())
    password = secrets.token_urlsafe(16)
    servers.format_storage(jars, run, ports, servers.new_cluster_id(), "migrator", password)
    proc = servers.start_broker(jars, run)
    plaintext = f"127.0.0.1:{ports.plaintext}"
    try:
        wait_until(lambda: servers.broker_ready(plaintext), timeout=120,
                   what="the SASL_SSL test broker", proc=proc, log=run / "logs" / "kafka.log")
        yield SaslSslBroker(plaintext, f"127.0.0.1:{ports.sasl_ssl}", str(run / "tls" / "ca.pem"),
                            "migrator", password)
    finally:
        stop(proc.pid, grace=10)


def migrator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrator", *args], capture_output=True,
                          text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def seeded(broker: SaslSslBroker) -> str:
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
        committed = wait_for(lambda: kit.committed(group, seeded, 2) == {0: 20, 1: 20}, 30)
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
