from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from migrator.bridge.config import BridgeConfig, KafkaSection, load_bridge_config
from migrator.errors import ConfigError

GOOD = """\
kafka:
  bootstrap_servers: localhost:9092
  sasl_password: hunter2
qstash:
  url: http://127.0.0.1:8080/
group: g1
routes:
  - topic: orders
    ordered: true
    payload: {mode: decode, decimal: string}
    tombstone: dead_letter
    destinations:
      - kind: publish-url
        url: https://example.com/a
        retries: 3
        delay: 10s
        flow_control: {key: "{topic}-{partition}", rate: 10, parallelism: 2, period: 1m}
        headers: {X-Team: payments}
      - kind: enqueue-queue
        queue: orders-{partition}
        url: https://example.com/q
      - kind: publish-url-group
        url_group: fanout
      - kind: workflow
        url: https://example.com/wf
      - kind: direct-http
        url: http://127.0.0.1:9/x
        timeout: 2.5
dead_letter: {topic: orders.dlq}
batch: {count: 50, bytes: 100000, linger_ms: 2}
"""


def write(tmp_path: Path, text: str, name: str = "bridge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_config_loads_every_destination_kind(tmp_path: Path) -> None:
    cfg = load_bridge_config(write(tmp_path, GOOD))
    kinds = [d.kind for d in cfg.routes[0].destinations]
    assert kinds == ["publish-url", "enqueue-queue", "publish-url-group", "workflow", "direct-http"]
    assert cfg.qstash.url == "http://127.0.0.1:8080"
    assert cfg.routes[0].payload.decimal == "string"
    fc = cfg.routes[0].destinations[0].flow_control  # type: ignore[union-attr]
    assert fc is not None and fc.header_value() == "parallelism=2, rate=10, period=1m"
    assert "hunter2" not in repr(cfg)
    with pytest.raises(ValidationError, match="frozen"):
        cfg.group = "other"  # type: ignore[misc]


def test_kafka_section_builds_the_connection(tmp_path: Path) -> None:
    props = write(tmp_path, "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n", "k.properties")
    cfg = load_bridge_config(
        write(tmp_path, GOOD.replace("  sasl_password: hunter2\n", "  properties_file: k.properties\n"))
    )
    conn = cfg.kafka.connection(base_dir=tmp_path, x_options=["fetch.max.bytes=1000"], environ={})
    conf = conn.to_librdkafka()
    assert conf["security.protocol"] == "SASL_PLAINTEXT"
    assert conf["fetch.max.bytes"] == "1000"
    assert props.exists()


def test_unknown_field_reports_file_line_and_path(tmp_path: Path) -> None:
    text = GOOD.replace("        timeout: 2.5\n", "        timeout: 2.5\n        tiemout: 3\n")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_bridge_config(path)
    line = text.splitlines().index("        tiemout: 3") + 1
    assert str(err.value).startswith(f"{path}:{line}: routes[0].destinations[4].tiemout: unknown field")


def test_type_error_reports_line_of_the_value(tmp_path: Path) -> None:
    text = GOOD.replace("retries: 3", "retries: lots")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_bridge_config(path)
    line = text.splitlines().index("        retries: lots") + 1
    assert f"{path}:{line}: routes[0].destinations[0].retries:" in str(err.value)


def test_bad_duration_and_bad_template(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"delay: '10 seconds' is not a duration"):
        load_bridge_config(write(tmp_path, GOOD.replace("delay: 10s", "delay: 10 seconds")))
    with pytest.raises(ConfigError, match=r"flow_control.key: unknown placeholder"):
        load_bridge_config(write(tmp_path, GOOD.replace('"{topic}-{partition}"', '"{offset}"')))


def test_json_config_and_cross_field_rules(tmp_path: Path) -> None:
    data = {"routes": [{"topic": "t", "destinations": [{"kind": "direct-http", "url": "http://h/x"}]}],
            "start": "timestamp"}
    path = write(tmp_path, json.dumps(data, indent=1), "bridge.json")
    with pytest.raises(ConfigError, match="start_timestamp"):
        load_bridge_config(path)
    data["start_timestamp"] = "2026-01-01T00:00:00Z"
    cfg = load_bridge_config(write(tmp_path, json.dumps(data), "bridge.json"))
    assert cfg.start_timestamp is not None and not cfg.uses_qstash()


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"bridge.yaml:3: not valid YAML"):
        load_bridge_config(write(tmp_path, "routes:\n  - [unclosed\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_bridge_config(tmp_path / "nope.yaml")


def test_qstash_token_from_env_or_error() -> None:
    cfg = BridgeConfig.model_validate(
        {"routes": [{"topic": "t", "destinations": [{"kind": "workflow", "url": "http://h/w"}]}]}
    )
    qstash = cfg.qstash.resolved({"QSTASH_URL": "http://q:1/", "QSTASH_TOKEN": "tok"})
    assert (qstash.url, qstash.token.get_secret_value()) == ("http://q:1", "tok")
    with pytest.raises(ConfigError, match="QSTASH_TOKEN"):
        cfg.qstash.resolved({})


def test_schema_is_json() -> None:
    schema = BridgeConfig.model_json_schema()
    assert "routes" in schema["required"]
    assert json.dumps(schema)


def test_the_documented_example_is_a_valid_config() -> None:
    """docs/bridge.md's full bridge.yaml stays in step with the model (every field it shows)."""
    import yaml

    doc = (Path(__file__).resolve().parents[2] / "docs" / "bridge.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    data = yaml.safe_load(example)
    data["kafka"].pop("properties_file")  # names a file the test does not have
    config = BridgeConfig.model_validate(data)
    direct = config.routes[0].destinations[-1]
    assert direct.kind == "direct-http" and direct.success_on == (409,)
    assert config.in_flight.batches == 16 and config.batch.count is None


def test_kafka_precedence_is_the_toolkits_one(tmp_path: Path) -> None:
    """env < kafka.properties_file < the config's keys < --kafka-config < -X, key by key."""
    write(tmp_path, "bootstrap.servers=config-file:9092\nfetch.max.bytes=1\nclient.id=from-file\n",
          "k.properties")
    flag = write(tmp_path, "bootstrap.servers=flag-file:9092\nfetch.max.bytes=2\n", "flag.properties")
    section = KafkaSection.model_validate({
        "properties_file": "k.properties", "bootstrap_servers": "config:9092",
        "options": {"fetch.max.bytes": "3", "fetch.min.bytes": "3"}})
    env = {"KAFKA_BOOTSTRAP_SERVERS": "env:9092"}
    conf = section.connection(base_dir=tmp_path, environ=env).to_librdkafka()
    assert (conf["bootstrap.servers"], conf["fetch.max.bytes"], conf["client.id"]) == (
        "config:9092", "3", "from-file")
    conf = section.connection(base_dir=tmp_path, environ=env, properties_file=flag).to_librdkafka()
    assert (conf["bootstrap.servers"], conf["fetch.max.bytes"], conf["fetch.min.bytes"]) == (
        "flag-file:9092", "2", "3")
    assert "client.id" not in conf  # --kafka-config replaces kafka.properties_file
    conf = section.connection(base_dir=tmp_path, environ=env, properties_file=flag,
                              x_options=["fetch.max.bytes=4"]).to_librdkafka()
    assert conf["fetch.max.bytes"] == "4"
    bare = KafkaSection.model_validate({}).connection(environ=env).to_librdkafka()
    assert bare["bootstrap.servers"] == "env:9092"
