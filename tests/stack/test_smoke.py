"""The stack is real: Kafka, SCRAM, Apicurio (Confluent API) and Connect, cross-checked with
Kafka's own CLI tools run from the same jars."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # (not re-exported in its stubs)
    AdminClient,
    ConfigResource,
    ConfigSource,
    ResourceType,
)
from confluent_kafka.schema_registry import Schema, SchemaReference
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.stack import EstateInfo
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.stack


def kafka_tool(stack: EstateInfo, main: str, *args: str) -> str:
    assert stack.lib_dir, "KAFKA_LIB_DIR is needed to run Kafka's own tools"
    log4j = Path(stack.lib_dir).parent / "tools-log4j2.properties"
    if not log4j.exists():
        log4j.write_text("status = error\nrootLogger.level = error\n", encoding="utf-8")
    cmd = ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
           f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{stack.lib_dir}/*", main, *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


def test_produce_consume_offsets_and_lag(kafka: KafkaKit) -> None:
    topic = kafka.create_topic(unique("smoke"), partitions=3)
    records = [Rec(f"v{i}".encode(), key=f"k{i % 5}", headers=[("h", b"1")], partition=i % 3)
               for i in range(30)]
    assert kafka.produce(topic, records) == 30
    ends = kafka.end_offsets(topic, 3)
    assert ends == {0: 10, 1: 10, 2: 10}

    group = unique("smoke-group")
    got = kafka.consume_all(topic, 30, group=group)
    assert sorted(m.value() for m in got) == sorted(r.value for r in records)  # type: ignore[type-var]
    assert all(m.headers() == [("h", b"1")] for m in got)
    assert kafka.committed(group, topic, 3) == ends  # lag 0

    lagging = unique("smoke-lagging")
    kafka.commit_group(lagging, {(topic, 0): 4, (topic, 1): 10, (topic, 2): 0})
    committed = kafka.committed(lagging, topic, 3)
    lag = {p: ends[p] - committed[p] for p in ends}
    assert lag == {0: 6, 1: 0, 2: 10}


def test_topic_configs(kafka: KafkaKit) -> None:
    topic = kafka.create_topic(unique("smoke-cfg"), config={"cleanup.policy": "compact",
                                                             "retention.ms": "3600000"})
    res = ConfigResource(ResourceType.TOPIC, topic)
    configs = kafka.admin.describe_configs([res])[res].result(timeout=30)
    assert configs["cleanup.policy"].value == "compact"
    assert not configs["cleanup.policy"].is_default
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["compression.type"].is_default
    assert "min.insync.replicas" in configs


def test_scram_client_authenticates_and_wrong_password_is_refused(
        kafka_stack: EstateInfo) -> None:
    assert kafka_stack.sasl_bootstrap_servers and kafka_stack.sasl_password
    base: dict[str, Any] = {"bootstrap.servers": kafka_stack.sasl_bootstrap_servers,
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.username": kafka_stack.sasl_username, "log_level": 0}
    good = AdminClient({**base, "sasl.password": kafka_stack.sasl_password})
    assert good.describe_cluster(request_timeout=20).result().nodes
    errors: list[KafkaError] = []
    bad_config: dict[str, Any] = {**base, "sasl.password": "not-the-password",
                                  "error_cb": errors.append}
    bad = AdminClient(bad_config)
    with pytest.raises(KafkaException):
        bad.describe_cluster(request_timeout=10).result()
    bad.poll(1)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors


AVRO_V1 = json.dumps({"type": "record", "name": "Order", "namespace": "smoke",
                      "fields": [{"name": "id", "type": "string"}]})


def test_registry_types_references_and_compatibility(kafka: KafkaKit) -> None:
    sr = kafka.registry()
    base = unique("smoke-sr")
    avro_id = sr.register_schema(f"{base}-value", Schema(AVRO_V1, "AVRO"))
    json_id = sr.register_schema(f"{base}-json-value", Schema(json.dumps(
        {"type": "object", "properties": {"id": {"type": "string"}}}), "JSON"))
    proto = 'syntax = "proto3";\npackage smoke;\nmessage Ping { string id = 1; }\n'
    proto_id = sr.register_schema(f"{base}-proto-value", Schema(proto, "PROTOBUF"))
    assert len({avro_id, json_id, proto_id}) == 3

    wrapper = json.dumps({"type": "record", "name": "Envelope", "namespace": "smoke",
                          "fields": [{"name": "order", "type": "smoke.Order"}]})
    ref = SchemaReference("smoke.Order", f"{base}-value", 1)
    sr.register_schema(f"{base}-envelope-value", Schema(wrapper, "AVRO", [ref]))
    latest = sr.get_latest_version(f"{base}-envelope-value")
    assert [r.subject for r in latest.schema.references or []] == [f"{base}-value"]
    assert sr.get_referenced_by(f"{base}-value", 1)

    types = {sr.get_latest_version(s).schema.schema_type for s in
             (f"{base}-value", f"{base}-json-value", f"{base}-proto-value")}
    assert types == {"AVRO", "JSON", "PROTOBUF"}
    assert sr.get_compatibility() == "BACKWARD"

    incompatible = json.dumps({"type": "record", "name": "Order", "namespace": "smoke",
                               "fields": [{"name": "id", "type": "int"}]})
    with pytest.raises(SchemaRegistryError) as err:
        sr.register_schema(f"{base}-value", Schema(incompatible, "AVRO"))
    assert err.value.http_status_code == 409


def test_filestream_connector_runs(kafka_stack: EstateInfo, kafka: KafkaKit,
                                   tmp_path: Path) -> None:
    assert kafka_stack.connect_url
    source = tmp_path / "in.txt"
    source.write_text("alpha\nbeta\n", encoding="utf-8")
    topic, name = unique("smoke-connect"), unique("smoke-file-src")
    reply = httpx.put(f"{kafka_stack.connect_url}/connectors/{name}/config", json={
        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "tasks.max": "1", "file": str(source), "topic": topic}, timeout=30)
    assert reply.status_code in (200, 201), reply.text
    try:
        def running(state: dict[str, Any]) -> bool:
            tasks = state.get("tasks") or []
            return bool(state.get("connector", {}).get("state") == "RUNNING" and tasks
                        and all(t["state"] == "RUNNING" for t in tasks))

        wait_until(lambda: httpx.get(f"{kafka_stack.connect_url}/connectors/{name}/status",
                                     timeout=10).json(), 90, until=running, interval=0.5,
                   what=f"connector {name} and its tasks RUNNING")
        got = kafka.consume_all(topic, 2, timeout=60)
        assert sorted(json.loads(m.value()) for m in got) == ["alpha", "beta"]
    finally:
        httpx.delete(f"{kafka_stack.connect_url}/connectors/{name}", timeout=30)


def test_kafka_tools_agree(kafka_stack: EstateInfo, kafka: KafkaKit) -> None:
    topic = kafka.create_topic(unique("smoke-tools"), partitions=2,
                               config={"retention.ms": "7200000"})
    kafka.produce(topic, [Rec(b"x", partition=i % 2) for i in range(7)])
    group = unique("smoke-tools-group")
    kafka.commit_group(group, {(topic, 0): 1, (topic, 1): 3})

    described = kafka_tool(kafka_stack, "org.apache.kafka.tools.TopicCommand",
                           "--bootstrap-server", kafka_stack.bootstrap_servers,
                           "--describe", "--topic", topic)
    assert re.search(rf"Topic: {re.escape(topic)}\s.*PartitionCount: 2", described)
    assert "retention.ms=7200000" in described
    assert len(re.findall(r"Partition: \d+\s+Leader: 1\s+Replicas: 1\s+Isr: 1", described)) == 2

    groups = kafka_tool(kafka_stack, "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                        "--bootstrap-server", kafka_stack.bootstrap_servers,
                        "--describe", "--group", group)
    rows = {}
    for line in groups.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[1] == topic:
            rows[int(cols[2])] = (int(cols[3]), int(cols[4]), int(cols[5]))
    ends = kafka.end_offsets(topic, 2)
    committed = kafka.committed(group, topic, 2)
    assert rows == {p: (committed[p], ends[p], ends[p] - committed[p]) for p in (0, 1)}

    consumer = Consumer({"bootstrap.servers": kafka_stack.bootstrap_servers, "group.id": group})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 1), timeout=10)
    finally:
        consumer.close()
    assert (low, high) == (0, ends[1])


def test_framed_avro_json_schema_and_protobuf_round_trip(kafka: KafkaKit) -> None:
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from tests.fixtures.kafka import protobuf_message_class

    sr = kafka.registry()
    avro_topic = kafka.create_topic(unique("smoke-avro"))
    avro_schema = json.dumps({"type": "record", "name": "Order", "namespace": unique("ns").replace("-", "_"),
                              "fields": [{"name": "id", "type": "string"}]})
    kafka.produce_serialized(avro_topic, kafka.avro_serializer(avro_schema), [{"id": "a1"}], keys=["k1"])

    json_topic = kafka.create_topic(unique("smoke-jsonschema"))
    json_schema = json.dumps({"type": "object", "title": "Ping", "properties": {"n": {"type": "integer"}}})
    kafka.produce_serialized(json_topic, kafka.json_schema_serializer(json_schema), [{"n": 7}])

    proto_topic = kafka.create_topic(unique("smoke-proto"))
    package = unique("smoke").replace("-", "_")
    ping = protobuf_message_class(package, "Ping", [("id", "string"), ("n", "int64")])
    kafka.produce_serialized(proto_topic, kafka.protobuf_serializer(ping), [ping(id="p1", n=3)])

    def first(topic: str) -> Any:
        (msg,) = kafka.consume_all(topic, 1)
        value = msg.value()
        assert value[0] == 0  # Confluent framing: magic byte, then the 4-byte schema id
        return msg

    avro_msg = first(avro_topic)
    assert avro_msg.key() == b"k1"
    ctx = SerializationContext(avro_topic, MessageField.VALUE)
    assert AvroDeserializer(sr)(avro_msg.value(), ctx) == {"id": "a1"}
    ctx = SerializationContext(json_topic, MessageField.VALUE)
    assert JSONDeserializer(json_schema, schema_registry_client=sr)(first(json_topic).value(), ctx) == {"n": 7}
    ctx = SerializationContext(proto_topic, MessageField.VALUE)
    decoded = ProtobufDeserializer(ping, {"use.deprecated.format": False})(first(proto_topic).value(), ctx)
    assert (decoded.id, decoded.n) == ("p1", 3)
    assert sr.get_latest_version(f"{proto_topic}-value").schema.schema_type == "PROTOBUF"


def test_ssl_listener_needs_the_stack_ca(kafka_stack: EstateInfo) -> None:
    assert kafka_stack.ssl_bootstrap_servers and kafka_stack.ssl_ca_file
    base: dict[str, Any] = {"bootstrap.servers": kafka_stack.ssl_bootstrap_servers,
                            "security.protocol": "SSL",
            "log_level": 0}
    trusted = AdminClient({**base, "ssl.ca.location": kafka_stack.ssl_ca_file})
    assert trusted.describe_cluster(request_timeout=20).result().nodes
    errors: list[KafkaError] = []
    from migrator.stack.tls import make_tls_files

    other_ca = make_tls_files(Path(kafka_stack.ssl_ca_file).parent.parent / "other-ca").ca_cert
    untrusted_config: dict[str, Any] = {**base, "ssl.ca.location": str(other_ca),
                                        "error_cb": errors.append}
    untrusted = AdminClient(untrusted_config)
    with pytest.raises(KafkaException):
        untrusted.describe_cluster(request_timeout=5).result()
    untrusted.poll(1)
    assert any(e.code() == KafkaError._SSL for e in errors), errors
