"""TLS client settings as Java users have them: PKCS12 truststores made by keytool, PKCS12 and PEM
keystores for a listener that requires a client certificate (mTLS), used unchanged by the audit
and the bridge; a JKS store is refused with the conversion command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from migrator.bridge.runner import Bridge
from migrator.config import KafkaConnection
from tests.bridge.harness import FAST_GROUP, RunningBridge, bridge_config
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.stack.conftest import SaslSslBroker

pytestmark = pytest.mark.stack
STORE_PASSWORD = "store-pass-123"


def keytool_truststore(ca_file: str, path: Path) -> Path:
    """A PKCS12 truststore as `keytool -importcert` writes it (Java's own tool)."""
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "stack-ca", "-file", ca_file,
                    "-keystore", str(path), "-storetype", "PKCS12", "-storepass", STORE_PASSWORD],
                   check=True, capture_output=True, timeout=120)
    return path


def pkcs12_keystore(broker: SaslSslBroker, path: Path) -> Path:
    """The client's key and certificate as a password-protected PKCS12 keystore."""
    key = serialization.load_pem_private_key(Path(broker.client_key).read_bytes(), None)
    cert = x509.load_pem_x509_certificate(Path(broker.client_cert).read_bytes())
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"client", key, cert, None,  # type: ignore[arg-type]
        serialization.BestAvailableEncryption(STORE_PASSWORD.encode())))
    return path


def audit(props: Path, topic: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "migrator", "audit", "--kafka-config", str(props), "--include", topic,
         "--sample-seconds", "0", "--sample-records", "5", "--format", "json", "--timeout", "20"],
        capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def topic(sasl_ssl_broker: SaslSslBroker) -> str:
    kit = KafkaKit(sasl_ssl_broker.bootstrap, None)
    name = kit.create_topic(unique("stores"), partitions=1)
    kit.produce(name, (Rec(f"s{i}") for i in range(12)))
    return name


def test_a_keytool_pkcs12_truststore(sasl_ssl_broker: SaslSslBroker, topic: str,
                                     tmp_path: Path) -> None:
    trust = keytool_truststore(sasl_ssl_broker.ca_file, tmp_path / "truststore.p12")
    props = tmp_path / "client.properties"
    props.write_text(f"bootstrap.servers={sasl_ssl_broker.ssl}\nsecurity.protocol=SSL\n"
                     f"ssl.truststore.type=PKCS12\nssl.truststore.location={trust}\n"
                     f"ssl.truststore.password={STORE_PASSWORD}\n")
    done = audit(props, topic)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["topics"][0]["name"] == topic
    assert STORE_PASSWORD not in done.stdout + done.stderr


@pytest.mark.parametrize("keystore", ["pkcs12", "pem"])
def test_mtls_with_a_keystore(sasl_ssl_broker: SaslSslBroker, topic: str, tmp_path: Path,
                              keystore: str) -> None:
    b = sasl_ssl_broker
    trust = keytool_truststore(b.ca_file, tmp_path / "truststore.p12")
    lines = [f"bootstrap.servers={b.mtls}", "security.protocol=SSL", "ssl.truststore.type=PKCS12",
             f"ssl.truststore.location={trust}", f"ssl.truststore.password={STORE_PASSWORD}"]
    if keystore == "pkcs12":
        lines += ["ssl.keystore.type=PKCS12",
                  f"ssl.keystore.location={pkcs12_keystore(b, tmp_path / 'keystore.p12')}",
                  f"ssl.keystore.password={STORE_PASSWORD}", f"ssl.key.password={STORE_PASSWORD}"]
    else:  # Kafka's PEM keystore properties, inline over continuation lines
        cert = Path(b.client_cert).read_text().strip().splitlines()
        key = Path(b.client_key).read_text().strip().splitlines()
        lines += ["ssl.keystore.type=PEM",
                  "ssl.keystore.certificate.chain=" + " \\\n  ".join(cert),
                  "ssl.keystore.key=" + " \\\n  ".join(key)]
    props = tmp_path / "client.properties"
    props.write_text("\n".join(lines) + "\n")
    done = audit(props, topic)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["topics"][0]["name"] == topic
    assert STORE_PASSWORD not in done.stdout + done.stderr


def test_mtls_without_a_client_certificate_is_one_line(sasl_ssl_broker: SaslSslBroker,
                                                      topic: str, tmp_path: Path) -> None:
    props = tmp_path / "client.properties"
    props.write_text(f"bootstrap.servers={sasl_ssl_broker.mtls}\nsecurity.protocol=SSL\n"
                     f"ssl.truststore.location={sasl_ssl_broker.ca_file}\n")
    done = audit(props, topic)
    assert done.returncode in (4, 5), done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Kafka at "), done.stderr


def test_the_bridge_delivers_over_mtls_with_pkcs12_stores(
    sasl_ssl_broker: SaslSslBroker, topic: str, tmp_path: Path, endpoint: RecordingEndpoint
) -> None:
    b = sasl_ssl_broker
    props = tmp_path / "client.properties"
    props.write_text(
        f"bootstrap.servers={b.mtls}\nsecurity.protocol=SSL\nssl.truststore.type=PKCS12\n"
        f"ssl.truststore.location={keytool_truststore(b.ca_file, tmp_path / 't.p12')}\n"
        f"ssl.truststore.password={STORE_PASSWORD}\nssl.keystore.type=PKCS12\n"
        f"ssl.keystore.location={pkcs12_keystore(b, tmp_path / 'k.p12')}\n"
        f"ssl.keystore.password={STORE_PASSWORD}\n")
    cfg = bridge_config(group=unique("stores-g"), routes=[{"topic": topic, "destinations": [
        {"kind": "direct-http", "url": endpoint.url}]}])
    rb = RunningBridge(Bridge(cfg, KafkaConnection.build(properties_file=props),
                              consumer_overrides=FAST_GROUP))
    try:
        got = endpoint.wait_for(12, timeout=90)
    finally:
        stats = rb.stop()
    assert sorted(r.body for r in got) == sorted(f"s{i}".encode() for i in range(12))
    assert stats.delivered == 12


def test_a_jks_store_is_refused_with_the_conversion(tmp_path: Path) -> None:
    props = tmp_path / "client.properties"
    props.write_text("bootstrap.servers=b:9093\nsecurity.protocol=SSL\nssl.truststore.type=JKS\n"
                     "ssl.truststore.location=/etc/kafka/truststore.jks\n")
    done = subprocess.run([sys.executable, "-m", "migrator", "audit", "--kafka-config", str(props)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    (line,) = done.stderr.strip().splitlines()
    assert "keytool -importkeystore" in line and "-deststoretype PKCS12" in line
