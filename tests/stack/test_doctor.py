"""`migrator doctor` against the real stack: each step's verdict and fix, over PLAINTEXT and over
the SASL_SSL listener with each mechanism, and the failures users meet (a wrong secret, an
untrusted certificate, TLS against a plaintext port, nothing listening, an unknown host, a wrong
registry URL). Secrets are never printed."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from migrator.kafka.diagnosis import GROUP_NEEDS, TOPIC_NEEDS, Diagnosis, _acl_check, missing_operations
from migrator.stack.process import free_port
from tests.fixtures.kafka import KafkaKit, unique
from tests.fixtures.stack import EstateInfo
from tests.stack.conftest import MECHANISMS, SaslSslBroker

pytestmark = pytest.mark.stack


def doctor(*args: str) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run([sys.executable, "-m", "migrator", "doctor", "--format", "json",
                           "--timeout", "10", *args], capture_output=True, text=True, timeout=180)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout), done.stdout + done.stderr


def by_step(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    steps: dict[str, list[dict[str, Any]]] = {}
    for check in report["checks"]:
        steps.setdefault(check["step"], []).append(check)
    return steps


def statuses(report: dict[str, Any]) -> dict[str, set[str]]:
    return {step: {c["status"] for c in checks} for step, checks in by_step(report).items()}


def test_plaintext_estate_with_registry_and_connect(kafka: KafkaKit, kafka_stack: EstateInfo) -> None:
    topic = kafka.create_topic(unique("doc"))
    args = ["-b", kafka_stack.bootstrap_servers, "--topic", topic, "--group", unique("doc-g")]
    if kafka_stack.schema_registry_url:
        args += ["--schema-registry-url", kafka_stack.schema_registry_url]
    if kafka_stack.connect_url:
        args += ["--connect-url", kafka_stack.connect_url]
    code, report, _ = doctor(*args)
    assert code == 0 and report["ok"], report
    seen = statuses(report)
    assert seen["dns"] == seen["tcp"] == seen["kafka"] == {"ok"}
    assert seen["tls"] == {"skipped"}
    assert seen["acl:cluster"] == seen["acl:topic"] == seen["acl:group"] == {"ok"}
    if kafka_stack.schema_registry_url and kafka_stack.connect_url:
        assert seen["registry"] == seen["connect"] == {"ok"}


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_sasl_ssl_each_mechanism(sasl_ssl_broker: SaslSslBroker, tmp_path: Path,
                                 mechanism: str) -> None:
    props = sasl_ssl_broker.properties(mechanism, tmp_path / "client.properties")
    code, report, out = doctor("--kafka-config", str(props))
    assert code == 0, report
    (tls,) = by_step(report)["tls"]
    assert tls["status"] == "ok"
    assert "CN=127.0.0.1" in tls["detail"] and "issued by CN=migrator dev stack CA" in tls["detail"]
    assert "trusted" in tls["detail"] and "days)" in tls["detail"]
    (sasl,) = by_step(report)["sasl"]
    assert sasl["status"] == "ok" and f"authenticated, {mechanism} as migrator" in sasl["detail"]
    assert report["kafka"].endswith(f"(SASL_SSL {mechanism} as migrator)")
    assert sasl_ssl_broker.password not in out


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_wrong_secret_fails_the_sasl_step(sasl_ssl_broker: SaslSslBroker, tmp_path: Path,
                                            mechanism: str) -> None:
    wrong = "not-the-" + secrets.token_hex(6)
    props = sasl_ssl_broker.properties(mechanism, tmp_path / "client.properties", password=wrong)
    code, report, out = doctor("--kafka-config", str(props), "--topic", "t", "--group", "g")
    assert code == 1 and not report["ok"]
    assert "sasl" in by_step(report), report
    (sasl,) = by_step(report)["sasl"]
    assert sasl["status"] == "fail" and mechanism in sasl["detail"]
    assert "sasl.jaas.config" in sasl["fix"]
    assert statuses(report)["tls"] == {"ok"}
    assert statuses(report)["acl:topic"] == statuses(report)["acl:group"] == {"skipped"}
    assert wrong not in out


def test_an_untrusted_certificate_names_its_issuer_and_the_fix(sasl_ssl_broker: SaslSslBroker,
                                                               tmp_path: Path) -> None:
    props = sasl_ssl_broker.properties("SCRAM-SHA-512", tmp_path / "client.properties")
    text = "\n".join(line for line in props.read_text().splitlines()
                     if not line.startswith("ssl.truststore"))  # the system CAs only
    props.write_text(text + "\n")
    code, report, _ = doctor("--kafka-config", str(props))
    assert code == 1
    (tls,) = by_step(report)["tls"]
    assert tls["status"] == "fail" and "not trusted" in tls["detail"]
    assert "issued by CN=migrator dev stack CA" in tls["detail"]
    assert "ssl.truststore.location" in tls["fix"]
    assert statuses(report)["kafka"] == {"skipped"}


def test_tls_against_a_plaintext_port(kafka_stack: EstateInfo, tmp_path: Path) -> None:
    code, report, _ = doctor("-b", kafka_stack.bootstrap_servers, "-X", "security.protocol=SSL")
    assert code == 1
    (tls,) = by_step(report)["tls"]
    assert tls["status"] == "fail" and "security.protocol" in tls["fix"]


def test_nothing_listening_and_an_unknown_host() -> None:
    port = free_port()
    code, report, _ = doctor("-b", f"127.0.0.1:{port},no-such-host.invalid:9092")
    assert code == 1
    dns = {c["target"]: c for c in by_step(report)["dns"]}
    assert dns["no-such-host.invalid:9092"]["status"] == "fail"
    assert "DNS" in dns["no-such-host.invalid:9092"]["fix"]
    (tcp,) = [c for c in by_step(report)["tcp"] if c["target"] == f"127.0.0.1:{port}"]
    assert tcp["status"] == "fail" and "connection failed" in tcp["detail"]
    assert statuses(report)["kafka"] == {"skipped"}


def test_a_wrong_registry_url(kafka_stack: EstateInfo) -> None:
    if not kafka_stack.schema_registry_url:
        pytest.skip("this estate has no Schema Registry")  # the local stack always has one
    base = kafka_stack.schema_registry_url.split("/apis/")[0]
    code, report, _ = doctor("-b", kafka_stack.bootstrap_servers, "--schema-registry-url",
                             base + "/nope", "--connect-url", f"http://127.0.0.1:{free_port()}")
    assert code == 1
    (registry,) = by_step(report)["registry"]
    assert registry["status"] == "fail" and "HTTP 404" in registry["detail"]
    (connect,) = by_step(report)["connect"]
    assert connect["status"] == "fail" and "no answer" in connect["detail"]


def test_the_table_format_prints_each_fix(kafka_stack: EstateInfo) -> None:
    done = subprocess.run([sys.executable, "-m", "migrator", "doctor", "-b",
                           f"127.0.0.1:{free_port()}", "--timeout", "5"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "FAIL  tcp" in done.stdout and "fix: nothing listens there" in done.stdout
    assert done.stdout.rstrip().endswith("step(s) failed")


def test_missing_acls_give_the_grant() -> None:
    assert missing_operations(["DESCRIBE", "READ", "DESCRIBE_CONFIGS"], TOPIC_NEEDS) == ([], [])
    assert missing_operations(["ALL"], GROUP_NEEDS) == ([], [])
    diag = Diagnosis()
    _acl_check(diag, "acl:topic", "orders", ["DESCRIBE"], TOPIC_NEEDS, "--topic orders",
               "User:bridge")
    _acl_check(diag, "acl:topic", "audit-only", ["DESCRIBE", "READ"], TOPIC_NEEDS,
               "--topic audit-only", "User:bridge")
    failed, warned = diag.checks
    assert failed.status == "fail" and "READ (audit: sample records; bridge: consume)" in failed.detail
    assert failed.fix == ("kafka-acls --add --allow-principal User:bridge --operation Read "
                          "--topic orders")
    assert warned.status == "warn" and "DescribeConfigs" in warned.fix
