"""AWS MSK IAM (``sasl.mechanism=AWS_MSK_IAM``) without MSK: the Java client's properties map onto
librdkafka's OAUTHBEARER with an ``oauth_cb`` that signs, offline, with Amazon's signer and fake
credentials from the environment, a token of MSK's shape (a SigV4-presigned ``kafka-cluster:Connect``
URL, base64url) for the region of the bootstrap host or the ``aws.region`` setting. What only a
real MSK cluster can prove (that it accepts the token) is not proven here (docs/deployment.md).
The refusal by a real broker is in tests/stack/test_msk_iam.py."""

from __future__ import annotations

import base64
import secrets
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from migrator.config import KafkaConnection
from migrator.config.msk_iam import MskIamTokenProvider, region_from_bootstrap
from migrator.errors import ConfigError, ExtraNotInstalledError, KafkaAuthError
from tests.fixtures.cli import migrator

MSK_HOST = "b-1.orders.abc123.c2.kafka.eu-central-1.amazonaws.com:9098"
JAAS = "software.amazon.msk.auth.iam.IAMLoginModule required;"
HANDLER = "software.amazon.msk.auth.iam.IAMClientCallbackHandler"
# for the commands run here: nothing listens there, and no name is looked up outside
LOCAL = {"bootstrap": "127.0.0.1:9", "extra": "aws.region=eu-west-1\n"}


def msk_properties(path: Path, bootstrap: str = MSK_HOST, jaas: str = JAAS, extra: str = "") -> Path:
    """The Java client properties AWS documents for IAM access control."""
    path.write_text(
        f"bootstrap.servers={bootstrap}\n"
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=AWS_MSK_IAM\n"
        f"sasl.jaas.config={jaas}\n"
        f"sasl.client.callback.handler.class={HANDLER}\n" + extra)
    return path


class FakeAws:
    """Made-up AWS credentials in the environment, and nothing else AWS's chain could find."""

    def __init__(self) -> None:
        self.access_key = "AKIA" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_urlsafe(30)
        self.session_token = secrets.token_urlsafe(60)

    def env(self, tmp_path: Path, *, credentials: bool = True) -> dict[str, str | None]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key if credentials else None,
            "AWS_SECRET_ACCESS_KEY": self.secret_key if credentials else None,
            "AWS_SESSION_TOKEN": self.session_token if credentials else None,
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",  # never ask an instance metadata service
            "AWS_PROFILE": None, "AWS_DEFAULT_PROFILE": None, "AWS_ROLE_ARN": None,
            "AWS_WEB_IDENTITY_TOKEN_FILE": None, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": None,
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": None, "AWS_REGION": None, "AWS_DEFAULT_REGION": None,
        }

    def secrets(self) -> tuple[str, ...]:
        return (self.secret_key, self.session_token)


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeAws:
    fake = FakeAws()
    for key, value in fake.env(tmp_path).items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    return fake


def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the token must be signed offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def decode(token: str) -> str:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()


def test_the_callback_signs_an_msk_token_offline(aws: FakeAws, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    no_network(monkeypatch)
    conn = KafkaConnection.build(properties_file=msk_properties(tmp_path / "c.properties"), environ={})
    conf = conn.to_librdkafka()
    # librdkafka speaks MSK IAM as OAUTHBEARER over TLS, the token from oauth_cb
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "OAUTHBEARER"
    assert "sasl.jaas.config" not in conf and "sasl.client.callback.handler.class" not in conf
    callback = conf["oauth_cb"]
    assert isinstance(callback, MskIamTokenProvider)
    before = time.time()
    token, expiry = callback("")
    url = urlparse(decode(token))
    assert (url.scheme, url.netloc, url.path) == ("https", "kafka.eu-central-1.amazonaws.com", "/")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["Action"] == "kafka-cluster:Connect"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    access, _day, region, service, _end = query["X-Amz-Credential"].split("/")
    assert (access, region, service) == (aws.access_key, "eu-central-1", "kafka-cluster")
    assert query["X-Amz-Expires"] == "900" and query["X-Amz-Security-Token"] == aws.session_token
    assert len(query["X-Amz-Signature"]) == 64 and int(query["X-Amz-Signature"], 16) >= 0
    assert query["User-Agent"].startswith("aws-msk-iam-sasl-signer-python/")
    # expiry: seconds since the epoch (not the signer's milliseconds), 15 minutes after signing
    assert before - 2 + 900 <= expiry <= time.time() + 900
    assert aws.secret_key not in token and aws.secret_key not in decode(token)
    # nothing printable about the connection carries a credential or the token
    for text in (repr(conn), conn.describe(), repr(callback), str(conf)):
        assert not any(s in text for s in (*aws.secrets(), token)), text
    assert conn.describe() == (f"{MSK_HOST} (SASL_SSL AWS_MSK_IAM with the default AWS "
                               "credentials, region eu-central-1)")


def test_profile_and_role_come_from_the_jaas_line(aws: FakeAws, tmp_path: Path) -> None:
    role = "arn:aws:iam::123456789012:role/bridge"
    conn = KafkaConnection.build(properties_file=msk_properties(
        tmp_path / "c.properties", jaas=f'{JAAS[:-1]} awsRoleArn="{role}" awsRoleSessionName="b1";'),
        environ={})
    assert conn.msk_iam is not None
    assert (conn.msk_iam.role_arn, conn.msk_iam.role_session_name) == (role, "b1")
    conn = KafkaConnection.build(properties_file=msk_properties(
        tmp_path / "c.properties", jaas=f'{JAAS[:-1]} awsProfileName="prod";'), environ={})
    assert conn.msk_iam is not None and conn.msk_iam.profile == "prod"
    # a named profile that does not exist: one error naming AWS_MSK_IAM and the profile
    with pytest.raises(KafkaAuthError, match="AWS_MSK_IAM: cannot sign a token with profile prod"):
        conn.to_librdkafka()


@pytest.mark.parametrize(("servers", "region"), [
    (MSK_HOST, "eu-central-1"),
    ("b-2.x.y.c3.kafka.us-gov-west-1.amazonaws.com:9098,b-1.x.y.c3.kafka.us-gov-west-1.amazonaws.com:9098",
     "us-gov-west-1"),
    ("boot-ab12cd.c1.kafka-serverless.ap-southeast-2.amazonaws.com:9098", "ap-southeast-2"),
    ("b-1.x.y.c1.kafka.cn-north-1.amazonaws.com.cn:9098", "cn-north-1"),
    ("b-1-vpce.x.y.c2.kafka.us-east-1.amazonaws.com:14001", "us-east-1"),
    ("127.0.0.1:9098", None),
    ("kafka.example.com:9098", None),
])
def test_the_region_is_read_from_the_bootstrap_host(servers: str, region: str | None) -> None:
    assert region_from_bootstrap(servers) == region


def test_the_region_setting_wins_and_is_needed_off_aws(aws: FakeAws, tmp_path: Path) -> None:
    props = msk_properties(tmp_path / "c.properties", extra="aws.region=sa-east-1\n")
    conn = KafkaConnection.build(properties_file=props, environ={})
    assert conn.msk_iam is not None and conn.msk_iam.region == "sa-east-1"
    assert "aws.region" not in conn.to_librdkafka()  # ours, not librdkafka's
    local = msk_properties(tmp_path / "local.properties", bootstrap="127.0.0.1:9098")
    done = migrator("audit", "--kafka-config", str(local), env=aws.env(tmp_path))
    assert done.returncode == 3, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "AWS_MSK_IAM needs the cluster's AWS region" in line and "aws.region=" in line


def test_the_missing_extra_is_one_line_naming_it(aws: FakeAws, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aws_msk_iam_sasl_signer", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "aws_msk_iam_sasl_signer.MSKAuthTokenProvider", None)
    with pytest.raises(ExtraNotInstalledError):
        KafkaConnection.build(properties_file=msk_properties(tmp_path / "c.properties", **LOCAL),
                              environ={})
    (tmp_path / "bridge.yaml").write_text(
        "kafka:\n  properties_file: c.properties\ngroup: g\nroutes:\n  - topic: t\n"
        "    destinations:\n      - kind: direct-http\n        url: http://127.0.0.1:9/\n")
    props = ["--kafka-config", str(tmp_path / "c.properties")]
    for command in (["audit", *props], ["doctor", *props],
                    ["bridge", "check", "--config", str(tmp_path / "bridge.yaml")]):
        done = migrator(*command, env=aws.env(tmp_path))
        assert done.returncode == 15, (command, done.stdout, done.stderr)
        (line,) = done.stderr.strip().splitlines()
        assert "AWS_MSK_IAM" in line and "pip install 'kafka-qstash-migrator[msk]'" in line, line


def test_no_credentials_is_exit_5_naming_aws_msk_iam(aws: FakeAws, tmp_path: Path) -> None:
    props = msk_properties(tmp_path / "c.properties", **LOCAL)
    done = migrator("audit", "--kafka-config", str(props), "--timeout", "5",
                    env=aws.env(tmp_path, credentials=False))
    assert done.returncode == 5, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "AWS_MSK_IAM: no AWS credentials found" in line, line


@pytest.mark.parametrize(("props", "message"), [
    ("bootstrap.servers=" + MSK_HOST + "\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=AWS_MSK_IAM\n"
     f"sasl.jaas.config={JAAS}\n", "AWS_MSK_IAM needs security.protocol=SASL_SSL"),
    ("bootstrap.servers=" + MSK_HOST + "\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
     f"sasl.jaas.config={JAAS}\n", "set sasl.mechanism=AWS_MSK_IAM"),
    ("bootstrap.servers=" + MSK_HOST + "\nsecurity.protocol=SASL_SSL\nsasl.mechanism=AWS_MSK_IAM\n"
     'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required '
     'username="u" password="p";\n', "not another login module"),
])
def test_inconsistent_msk_settings_are_config_errors(aws: FakeAws, tmp_path: Path, props: str,
                                                     message: str) -> None:
    path = tmp_path / "c.properties"
    path.write_text(props)
    with pytest.raises(ConfigError, match=message):
        KafkaConnection.build(properties_file=path, environ={})


def test_bridge_yaml_takes_aws_msk_iam_without_a_properties_file(aws: FakeAws) -> None:
    from migrator.bridge.config import KafkaSection

    section = KafkaSection.model_validate({
        "bootstrap_servers": MSK_HOST, "security_protocol": "SASL_SSL",
        "sasl_mechanism": "AWS_MSK_IAM",
        "options": {"sasl.jaas.config": f'{JAAS[:-1]} awsProfileName="bridge";'}})
    conn = section.connection(environ={})
    assert conn.msk_iam is not None
    assert (conn.msk_iam.region, conn.msk_iam.profile) == ("eu-central-1", "bridge")
    bare = KafkaSection.model_validate({"bootstrap_servers": MSK_HOST, "security_protocol": "SASL_SSL",
                                        "sasl_mechanism": "AWS_MSK_IAM"}).connection(environ={})
    assert bare.msk_iam is not None and bare.msk_iam.profile is None  # the default chain
    assert callable(bare.to_librdkafka()["oauth_cb"])
