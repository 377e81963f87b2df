"""Connection config: Java properties, JAAS, -X, env precedence, one librdkafka dict, redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.config import KafkaConnection, QStashConnection, parse_properties, parse_x_options, redact
from migrator.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "client.properties"
    path.write_text(text, encoding="utf-8")
    return path


def test_scram_properties_file_maps_to_librdkafka(tmp_path: Path) -> None:
    props = write(tmp_path, """
# Java client settings users already have
bootstrap.servers=broker-1:9096,broker-2:9096
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\
    username="alice" password="s3cr\\"et";
ssl.endpoint.identification.algorithm=
key.deserializer=org.apache.kafka.common.serialization.StringDeserializer
""")
    conn = KafkaConnection.build(properties_file=props, environ={})
    conf = conn.to_librdkafka()
    assert conf == {
        "bootstrap.servers": "broker-1:9096,broker-2:9096",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": 's3cr\\"et',
        "ssl.endpoint.identification.algorithm": "none",
    }
    assert "s3cr" not in repr(conn) and "s3cr" not in conn.describe()


def test_precedence_env_then_file_then_flag_then_x(tmp_path: Path) -> None:
    props = write(tmp_path, "bootstrap.servers=file:9092\nfetch.max.bytes=100\n")
    conn = KafkaConnection.build(properties_file=props, environ={"KAFKA_BOOTSTRAP_SERVERS": "env:9092"},
                                 x_options=["fetch.max.bytes=200"])
    assert conn.bootstrap_servers == "file:9092"
    assert conn.to_librdkafka()["fetch.max.bytes"] == "200"
    flag = KafkaConnection.build(bootstrap_servers="flag:9092", environ={"KAFKA_BOOTSTRAP_SERVERS": "env:9092"})
    assert flag.bootstrap_servers == "flag:9092"
    env = KafkaConnection.build(environ={"KAFKA_BOOTSTRAP_SERVERS": "env:9092"})
    assert env.bootstrap_servers == "env:9092"


def test_plain_jaas_and_pem_truststore(tmp_path: Path) -> None:
    props = write(tmp_path, "\n".join([
        "bootstrap.servers=b:9093", "security.protocol=SASL_SSL", "sasl.mechanism=PLAIN",
        'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";',
        "ssl.truststore.type=PEM", "ssl.truststore.location=/etc/ca.pem",
    ]))
    conf = KafkaConnection.build(properties_file=props, environ={}).to_librdkafka()
    assert conf["sasl.username"] == "u" and conf["sasl.password"] == "p"
    assert conf["ssl.ca.location"] == "/etc/ca.pem"


@pytest.mark.parametrize(("text", "message"), [
    ("security.protocol=SSL\n", "no bootstrap servers"),
    ("bootstrap.servers=b:1\nsecurity.protocol=SASL_WHATEVER\n", "security_protocol"),
    ("bootstrap.servers=b:1\nsasl.jaas.config=nonsense\n", "not a JAAS login module"),
    ("bootstrap.servers=b:1\nsasl.jaas.config=x.PlainLoginModule required username=\"u\";\n",
     'password="..."'),
    ("bootstrap.servers=b:1\nssl.truststore.type=JKS\n", "convert the store to PKCS12"),
    ("bootstrap.servers=b:1\nssl.truststore.type=PKCS12\n", "needs ssl.truststore.location"),
    ("bootstrap.servers=b:1\nssl.keystore.type=PKCS12\nssl.keystore.location=/nonexistent.p12\n",
     "cannot read it"),
])
def test_bad_properties_give_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    props = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        KafkaConnection.build(properties_file=props, environ={})
    assert message in str(err.value)
    assert str(props) in str(err.value)
    assert "\n" not in str(err.value)


def test_properties_parser_handles_separators_and_continuations(tmp_path: Path) -> None:
    props = write(tmp_path, "a=1\nb: 2\nc 3\n! comment\nd=x\\\n  y\n")
    assert parse_properties(props) == {"a": "1", "b": "2", "c": "3", "d": "xy"}
    with pytest.raises(ConfigError, match="cannot read"):
        parse_properties(tmp_path / "missing.properties")
    latin = tmp_path / "latin1.properties"
    latin.write_bytes("sasl.username=j\xfcrgen\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8"):
        parse_properties(latin)


def test_x_options() -> None:
    assert parse_x_options(["a=b", "c=d=e"]) == {"a": "b", "c": "d=e"}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_x_options(["nokey"])


def test_redact_hides_every_secret_key() -> None:
    conf = {"sasl.password": "p", "sasl.jaas.config": "j", "basic.auth.user.info": "u:p",
            "connection.password": "x", "api_key": "k", "bootstrap.servers": "b:1"}
    out = redact(conf)
    assert out["bootstrap.servers"] == "b:1"
    assert all(v == "**********" for k, v in out.items() if k != "bootstrap.servers")


def test_qstash_connection_requires_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QSTASH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="QSTASH_TOKEN"):
        QStashConnection.from_env()
    monkeypatch.setenv("QSTASH_TOKEN", "sekrit-value")
    monkeypatch.setenv("QSTASH_URL", "http://127.0.0.1:1/")
    conn = QStashConnection.from_env()
    assert conn.url == "http://127.0.0.1:1" and "sekrit-value" not in repr(conn)


def test_inline_pem_from_java_continuation_lines_becomes_openssl_pem(tmp_path: Path) -> None:
    from migrator.stack.tls import make_tls_files

    ca = make_tls_files(tmp_path / "tls").ca_cert.read_text()
    body = ca.strip().splitlines()
    props = write(tmp_path, "bootstrap.servers=b:9093\nsecurity.protocol=SSL\nssl.truststore.type=PEM\n"
                  "ssl.truststore.certificates=" + " \\\n    ".join(body) + "\n")
    conf = KafkaConnection.build(properties_file=props, environ={}).to_librdkafka()
    assert conf["ssl.ca.pem"] == ca
    bad = write(tmp_path, "bootstrap.servers=b:9093\nssl.truststore.certificates=not a certificate\n")
    with pytest.raises(ConfigError, match="holds no PEM block"):
        KafkaConnection.build(properties_file=bad, environ={})


def test_redact_url_masks_credentials_and_query_values() -> None:
    from migrator.config import redact_url

    assert redact_url("https://u:p@h:8/a/b?x=1&y=&z#frag") == "https://u:***@h:8/a/b?x=***&y=***&z=***"
    assert redact_url("https://tok@h/") == "https://***@h/"
    assert redact_url("http://h:1") == "http://h:1"
    assert redact_url("not a url") == "not a url"
