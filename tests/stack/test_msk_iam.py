"""AWS MSK IAM wired into every Kafka client the commands make, against a real broker that is not
MSK: the stack's OAUTHBEARER listener (which validates JWTs from the local issuer). The audit, the
bridge, cutover and the doctor take the Java client's MSK properties, librdkafka calls our
``oauth_cb``, which signs a token with Amazon's signer and fake credentials; the broker refuses
it, and that refusal is exit 5 in one line naming AWS_MSK_IAM, with no credential and no token in
the output. That MSK accepts such a token is not proven here (docs/deployment.md)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from migrator.config.msk_iam import MskIamTokenProvider
from tests.fixtures.cli import migrator
from tests.stack.conftest import SaslSslBroker
from tests.test_msk_iam import FakeAws, msk_properties

pytestmark = pytest.mark.stack

REGION = "eu-west-1"
# Every token for the region starts with these characters (base64url of the signed URL's head).
TOKEN_HEAD = base64.urlsafe_b64encode(
    f"https://kafka.{REGION}.amazonaws.com/?Action=kafka-cluster%3AConnect"[:45].encode()).decode()


@pytest.fixture
def setup(sasl_ssl_broker: SaslSslBroker, tmp_path: Path) -> tuple[FakeAws, Path, Path]:
    aws = FakeAws()
    props = msk_properties(tmp_path / "client.properties", bootstrap=sasl_ssl_broker.oauth,
                           extra=f"aws.region={REGION}\nssl.truststore.type=PEM\n"
                                 f"ssl.truststore.location={sasl_ssl_broker.ca_file}\n")
    bridge = tmp_path / "bridge.yaml"
    bridge.write_text("kafka:\n  properties_file: client.properties\ngroup: msk-iam-g\nroutes:\n"
                      "  - topic: msk-iam-t\n    destinations:\n      - kind: direct-http\n"
                      "        url: http://127.0.0.1:9/\n")
    return aws, props, bridge


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each time librdkafka asks our oauth_cb for a token (in-process commands)."""
    seen: list[str] = []
    original = MskIamTokenProvider.__call__

    def spy(self: MskIamTokenProvider, config: str | None = None) -> Any:
        seen.append(self.settings.region)
        return original(self, config)

    monkeypatch.setattr(MskIamTokenProvider, "__call__", spy)
    return seen


def assert_no_secret(aws: FakeAws, *texts: str) -> None:
    out = "\n".join(texts)
    for secret in (*aws.secrets(), TOKEN_HEAD):
        assert secret not in out, f"{secret[:6]}... printed"


def refusal(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 5, (done.returncode, done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    assert "AWS_MSK_IAM" in errors[0] and "invalid_token" in errors[0], errors[0]
    return errors[0]


def test_the_audit_and_cutover_present_the_token_and_the_refusal_is_exit_5(
        setup: tuple[FakeAws, Path, Path], calls: list[str], tmp_path: Path) -> None:
    aws, props, bridge = setup
    audit = migrator("audit", "--kafka-config", str(props), "--sample-seconds", "0",
                     "--timeout", "20", env=aws.env(tmp_path))
    refusal(audit)
    assert len(audit.stderr.strip().splitlines()) == 1, audit.stderr
    assert calls and set(calls) == {REGION}, calls  # librdkafka took the token from oauth_cb
    calls.clear()
    status = migrator("cutover", "status", "--config", str(bridge), env=aws.env(tmp_path))
    refusal(status)
    assert calls, "cutover's clients did not ask oauth_cb"
    assert_no_secret(aws, audit.stdout, audit.stderr, status.stdout, status.stderr)


def test_the_doctor_fails_the_sasl_step_naming_aws_msk_iam(
        setup: tuple[FakeAws, Path, Path], calls: list[str], tmp_path: Path) -> None:
    aws, props, _ = setup
    done = migrator("doctor", "--kafka-config", str(props), "--format", "json",
                    env=aws.env(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    (sasl,) = [c for c in json.loads(done.stdout)["checks"] if c["step"] == "sasl"]
    assert sasl["status"] == "fail" and "AWS_MSK_IAM with the default AWS credentials" in sasl["detail"]
    assert "kafka-cluster:Connect" in sasl["fix"] and calls
    assert_no_secret(aws, done.stdout, done.stderr)


def test_the_bridge_process_is_refused_with_exit_5(setup: tuple[FakeAws, Path, Path],
                                                    tmp_path: Path) -> None:
    aws, _, bridge = setup
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "QSTASH_"))}
    env.update({k: v for k, v in aws.env(tmp_path).items() if v is not None})
    done = subprocess.run([sys.executable, "-m", "migrator", "bridge", "run", "--config", str(bridge)],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    refusal(done)
    assert_no_secret(aws, done.stdout, done.stderr)
