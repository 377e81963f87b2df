"""OAUTHBEARER with OIDC client credentials (KIP-768) on the stack's listener: Kafka validates the
JWT against the local issuer's JWKS; the toolkit takes the Java client's properties unchanged
(OAuthBearerLoginModule clientId/clientSecret/scope, sasl.oauthbearer.token.endpoint.url) and
fetches tokens through librdkafka's OIDC support. The audit reads, the bridge delivers, the doctor
passes, and a wrong client secret is exit 5 in one line naming OAUTHBEARER."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from migrator.bridge.runner import Bridge
from migrator.config import KafkaConnection
from tests.bridge.harness import FAST_GROUP, RunningBridge, bridge_config
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.stack.conftest import SaslSslBroker

pytestmark = pytest.mark.stack


def migrator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrator", *args], capture_output=True,
                          text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def topic(sasl_ssl_broker: SaslSslBroker) -> str:
    kit = KafkaKit(sasl_ssl_broker.bootstrap, None)
    name = kit.create_topic(unique("oauth"), partitions=2)
    kit.produce(name, (Rec(f"o{i}", partition=i % 2) for i in range(20)))
    return name


def test_audit_and_doctor_over_oauthbearer(sasl_ssl_broker: SaslSslBroker, topic: str,
                                           tmp_path: Path) -> None:
    props = sasl_ssl_broker.oauth_properties(tmp_path / "client.properties")
    done = migrator("audit", "--kafka-config", str(props), "--include", topic, "--format", "json",
                    "--sample-seconds", "0", "--sample-records", "5", "--timeout", "20")
    assert done.returncode == 0, done.stderr
    (found,) = json.loads(done.stdout)["topics"]
    assert sum(p["high_watermark"] for p in found["partitions"]) == 20
    doctor = migrator("doctor", "--kafka-config", str(props), "--topic", topic, "--format", "json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    report = json.loads(doctor.stdout)
    (sasl,) = [c for c in report["checks"] if c["step"] == "sasl"]
    assert sasl["status"] == "ok" and "OAUTHBEARER as migrator" in sasl["detail"]
    for out in (done, doctor):
        assert sasl_ssl_broker.client_secret not in out.stdout + out.stderr


def test_a_wrong_client_secret_is_exit_5_naming_oauthbearer(sasl_ssl_broker: SaslSslBroker,
                                                           tmp_path: Path) -> None:
    wrong = "not-the-" + secrets.token_hex(6)
    props = sasl_ssl_broker.oauth_properties(tmp_path / "client.properties", secret=wrong)
    done = migrator("audit", "--kafka-config", str(props), "--sample-seconds", "0",
                    "--timeout", "20")
    assert done.returncode == 5, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "OAUTHBEARER" in lines[0], done.stderr
    assert wrong not in done.stderr + done.stdout


def test_the_bridge_delivers_over_oauthbearer(sasl_ssl_broker: SaslSslBroker, topic: str,
                                              tmp_path: Path, endpoint: RecordingEndpoint) -> None:
    connection = KafkaConnection.build(
        properties_file=sasl_ssl_broker.oauth_properties(tmp_path / "client.properties"))
    assert "sasl.oauthbearer.client.secret" in connection.to_librdkafka()
    assert sasl_ssl_broker.client_secret not in repr(connection)
    cfg = bridge_config(group=unique("oauth-g"), routes=[{"topic": topic, "destinations": [
        {"kind": "direct-http", "url": endpoint.url}]}])
    rb = RunningBridge(Bridge(cfg, connection, consumer_overrides=FAST_GROUP))
    try:
        got = endpoint.wait_for(20, timeout=90)
    finally:
        stats = rb.stop()
    assert sorted(r.body for r in got) == sorted(f"o{i}".encode() for i in range(20))
    assert stats.delivered == 20


def test_oauthbearer_without_client_credentials_is_a_config_error(tmp_path: Path) -> None:
    props = tmp_path / "client.properties"
    props.write_text("bootstrap.servers=b:9093\nsecurity.protocol=SASL_SSL\n"
                     "sasl.mechanism=OAUTHBEARER\nsasl.jaas.config=org.apache.kafka.common."
                     "security.oauthbearer.OAuthBearerLoginModule required;\n")
    done = migrator("audit", "--kafka-config", str(props))
    assert done.returncode == 3
    (line,) = done.stderr.strip().splitlines()
    assert "sasl.oauthbearer.token.endpoint.url" in line and 'clientId="..."' in line
