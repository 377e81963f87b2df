"""A Protobuf value whose schema imports other registered schemas, through ``migrator bridge run``
(the real CLI process) to a real endpoint; one registered without its references is
dead-lettered with a reason naming the missing import."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka.schema_registry import Schema, SchemaReference

from tests.bridge.harness import BridgeProcess, wait_until
from tests.connectors.proto_helpers import ORDER_JSON, order, order_class, order_files
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique

pytestmark = pytest.mark.stack


def test_referenced_protobuf_types_arrive_as_json(
    kafka: KafkaKit, kafka_stack: Any, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    if not kafka_stack.schema_registry_url:
        pytest.skip("this estate has no Schema Registry")
    topic = kafka.create_topic(unique("proto-refs"), partitions=1)
    dlq = kafka.create_topic(unique("proto-refs-dlq"), partitions=1)
    package = unique("bridge_refs").replace("-", "_")
    cls = order_class(package)
    kafka.produce_serialized(topic, kafka.protobuf_serializer(cls), [order(cls)])
    # the same Order schema registered referencing money.proto only (it imports common.proto too)
    registry = kafka.registry()
    text = base64.b64encode(order_files(package)[2].SerializeToString()).decode()
    partial = registry.register_schema(f"{package}-partial", Schema(text, "PROTOBUF", [
        SchemaReference(f"{package}/money.proto", f"{package}/money.proto", 1)]))
    kafka.produce(topic, [Rec(b"\x00" + partial.to_bytes(4, "big") + b"\x00"
                              + order(cls).SerializeToString())])
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump({
        "kafka": {"bootstrap_servers": kafka.bootstrap}, "group": unique("g"),
        "dead_letter": {"topic": dlq},
        "routes": [{"topic": topic,
                    "payload": {"mode": "decode",
                                "schema_registry_url": kafka_stack.schema_registry_url},
                    "destinations": [{"kind": "direct-http", "url": endpoint.url}]}],
    }))
    proc = BridgeProcess(str(path), {})
    try:
        wait_until(lambda: len(endpoint.requests), 60, until=lambda k: k >= 1, what="1 request",
                   context=proc.output)
        dead = kafka.consume_all(dlq, 1)
    finally:
        assert proc.terminate() == 0, proc.output()
    assert endpoint.requests[0].headers["content-type"] == "application/json"
    assert endpoint.requests[0].body.decode() == ORDER_JSON
    headers = dict(dead[0].headers())
    assert headers["dead-letter-reason"] == b"undecodable"
    assert f"imports '{package}/common.proto', which is not among the schema's registry " \
        "references".encode() in headers["dead-letter-error"]
