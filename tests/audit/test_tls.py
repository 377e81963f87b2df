"""`migrator audit` over the SSL listener, with the Java client's PEM truststore settings."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from tests.fixtures.cli import migrator
from tests.fixtures.kafka import KafkaKit, unique
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.stack


def audit(props: Path, topic: str) -> subprocess.CompletedProcess[str]:
    # in-process, with every variable but PATH unset: only the properties file counts
    return migrator("audit", "--kafka-config", str(props), "--include", topic,
                    "--sample-seconds", "0", "--sample-records", "5", "--format", "json",
                    "--timeout", "20", env={k: None for k in os.environ if k != "PATH"})


@pytest.mark.parametrize("style", ["inline-certificates", "truststore-location"])
def test_audit_over_ssl_with_a_pem_truststore(kafka_stack: EstateInfo, kafka: KafkaKit, tmp_path: Path,
                                              style: str) -> None:
    assert kafka_stack.ssl_bootstrap_servers and kafka_stack.ssl_ca_file
    topic = kafka.create_topic(unique("tls-audit"), partitions=2)
    kafka.produce_json(topic, [{"n": i} for i in range(6)])
    ca = Path(kafka_stack.ssl_ca_file).read_text().strip().splitlines()
    lines = [f"bootstrap.servers={kafka_stack.ssl_bootstrap_servers}", "security.protocol=SSL",
             "ssl.truststore.type=PEM"]
    if style == "inline-certificates":  # as Kafka's docs write it: one value over continuation lines
        lines.append("ssl.truststore.certificates=" + " \\\n  ".join(ca))
    else:
        lines.append(f"ssl.truststore.location={kafka_stack.ssl_ca_file}")
    props = tmp_path / "client.properties"
    props.write_text("\n".join(lines) + "\n")

    out = audit(props, topic)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    admin = AdminClient({"bootstrap.servers": kafka_stack.bootstrap_servers})
    expected_id = admin.describe_cluster(request_timeout=20).result().cluster_id
    assert report["cluster"]["cluster_id"] == expected_id
    (found,) = [t for t in report["topics"] if t["name"] == topic]
    assert sum(p["high_watermark"] for p in found["partitions"]) == 6


def test_audit_refuses_an_untrusted_broker_certificate(kafka_stack: EstateInfo, tmp_path: Path) -> None:
    from migrator.stack.tls import make_tls_files

    assert kafka_stack.ssl_bootstrap_servers
    other = make_tls_files(tmp_path / "other").ca_cert
    props = tmp_path / "client.properties"
    props.write_text(f"bootstrap.servers={kafka_stack.ssl_bootstrap_servers}\nsecurity.protocol=SSL\n"
                     f"ssl.truststore.location={other}\n")
    out = audit(props, "anything")
    assert out.returncode in (4, 5), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr
