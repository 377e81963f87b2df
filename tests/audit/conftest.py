"""A seeded estate for the audit tests, built once per session on the shared stack.

Every name starts with a unique prefix (``aud-<hex>``) so the audit can be filtered to it with
``--include 'aud-<hex>*'`` and other helpers' topics on the shared stack never interfere.

Topics (prefix omitted):
    -orders              3 partitions, 30 keyed JSON records with headers; read by billing
                         (no lag) and shipping (lag 12): ordering, fan-out, lag, stale groups
    -orders.DLQ          dead-letter named, 2 records
    -customers           compacted, keyed, 2 tombstones among 10 records
    -app-store-changelog Streams changelog (compacted), -app-x-repartition Streams repartition
    -big                 max.message.bytes 3 MiB (override), one 1.5 MiB record
    -bigcfg              max.message.bytes 12 MiB (override), small records only
    -single              1 partition, 1,200 unkeyed text records (daily quota on the free plan)
    -events              2 partitions, 10 records, read by the live group (an active member)
    -clicks              written to while the audit samples (throughput)
    -avro / -jsonschema / -proto   Schema-Registry framed values (Avro with a reference to the
                         -address subject, JSON Schema, Protobuf importing <prefix>/address.proto)
    -connect-in          target of the FileStream source connector <prefix>-file-src, whose
                         config holds a `connection.password`
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaReference

from tests.fixtures.kafka import KafkaKit, Rec
from tests.fixtures.stack import EstateInfo
from tests.fixtures.wait import wait_until

CONNECTOR_SECRET = f"hunter2-{uuid.uuid4().hex}"
LARGE_RECORD = 1536 * 1024  # 1.5 MiB


@dataclass
class SeededEstate:
    prefix: str
    stack: EstateInfo
    kit: KafkaKit
    topics: dict[str, str] = field(default_factory=dict)  # short name -> full name
    groups: dict[str, str] = field(default_factory=dict)
    subjects: dict[str, str] = field(default_factory=dict)
    connector: str = ""
    connector_secret: str = CONNECTOR_SECRET
    live_stop: threading.Event = field(default_factory=threading.Event)

    def t(self, short: str) -> str:
        return self.topics[short]

    def g(self, short: str) -> str:
        return self.groups[short]

    @property
    def include(self) -> str:
        return f"{self.prefix}*"


ADDRESS_AVSC = {
    "type": "record", "name": "Address", "namespace": "com.acme",
    "fields": [{"name": "street", "type": "string"}, {"name": "city", "type": "string"}],
}
ORDER_AVSC = {
    "type": "record", "name": "Order", "namespace": "com.acme",
    "fields": [{"name": "id", "type": "string"}, {"name": "total", "type": "double"},
               {"name": "ship_to", "type": "com.acme.Address"}],
}
JSON_SCHEMA = json.dumps({
    "$schema": "http://json-schema.org/draft-07/schema#", "title": "Payment", "type": "object",
    "properties": {"id": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["id", "amount"],
})


def _proto_class(prefix: str) -> Any:
    """A Protobuf message class built at runtime; its file imports another (a reference)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    package = prefix.replace("-", "_")
    address = descriptor_pb2.FileDescriptorProto(
        name=f"{prefix}/address.proto", package=package, syntax="proto3")
    msg = address.message_type.add(name="Address")
    msg.field.add(name="city", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    shipment = descriptor_pb2.FileDescriptorProto(
        name=f"{prefix}/shipment.proto", package=package, syntax="proto3",
        dependency=[f"{prefix}/address.proto"])
    msg = shipment.message_type.add(name="Shipment")
    msg.field.add(name="id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    msg.field.add(name="to", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
                  type_name=f".{package}.Address")
    pool = descriptor_pool.Default()
    pool.Add(address)
    pool.Add(shipment)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.Shipment"))


def _seed_topics(est: SeededEstate) -> None:
    kit, p = est.kit, est.prefix
    specs: dict[str, tuple[int, dict[str, str]]] = {
        "orders": (3, {}),
        "orders.DLQ": (1, {}),
        "customers": (1, {"cleanup.policy": "compact"}),
        "app-store-changelog": (1, {"cleanup.policy": "compact"}),
        "app-x-repartition": (2, {}),
        "big": (1, {"max.message.bytes": str(3 * 1024 * 1024)}),
        "bigcfg": (1, {"max.message.bytes": str(12 * 1024 * 1024)}),
        "single": (1, {}),
        "events": (2, {}),
        "clicks": (1, {}),
        "avro": (1, {}),
        "jsonschema": (1, {}),
        "proto": (1, {}),
        "connect-in": (1, {}),
    }
    for short, (parts, config) in specs.items():
        est.topics[short] = kit.create_topic(f"{p}-{short}", parts, config)

    kit.produce(est.t("orders"), (
        Rec(json.dumps({"order": i, "total": i * 1.5}).encode(), key=f"customer-{i % 5}",
            headers=[("trace-id", f"t{i}".encode()), ("source", b"shop")], partition=i % 3)
        for i in range(30)))
    kit.produce(est.t("orders.DLQ"), [Rec(b'{"order": 7, "error": "timeout"}', key="customer-2")] * 2)
    kit.produce(est.t("customers"), [
        *(Rec(json.dumps({"name": f"c{i}"}).encode(), key=f"c{i}") for i in range(8)),
        Rec(None, key="c1"), Rec(None, key="c2"),
    ])
    kit.produce(est.t("app-store-changelog"), [Rec(b"\x01\x02", key=f"k{i}") for i in range(5)])
    kit.produce(est.t("app-x-repartition"), [Rec(b"\x05", key=f"k{i}") for i in range(4)])
    kit.produce(est.t("big"), [Rec(b"x" * LARGE_RECORD), Rec(b"small")])
    kit.produce(est.t("bigcfg"), [Rec(b"tiny") for _ in range(3)])
    kit.produce(est.t("single"), (Rec(f"line {i}".encode()) for i in range(1200)))
    kit.produce(est.t("events"), (Rec(f'{{"event": {i}}}'.encode(), partition=i % 2)
                                  for i in range(10)))


def _seed_schemas(est: SeededEstate) -> None:
    kit, p = est.kit, est.prefix
    sr = kit.registry()
    address_subject = f"{p}-address"
    address_id = sr.register_schema(address_subject, Schema(json.dumps(ADDRESS_AVSC), "AVRO"))
    address_version = sr.lookup_schema(
        address_subject, Schema(json.dumps(ADDRESS_AVSC), "AVRO")).version
    order_subject = f"{est.t('avro')}-value"
    order_id = sr.register_schema(order_subject, Schema(
        json.dumps(ORDER_AVSC), "AVRO",
        [SchemaReference("com.acme.Address", address_subject, address_version)]))
    est.subjects.update(address=address_subject, avro=order_subject)
    assert address_id != order_id
    named: dict[str, Any] = {}
    fastavro.parse_schema(ADDRESS_AVSC, named_schemas=named)
    parsed = fastavro.parse_schema(ORDER_AVSC, named_schemas=named)

    def frame(value: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(b"\x00" + order_id.to_bytes(4, "big"))
        fastavro.schemaless_writer(buf, parsed, value)
        return buf.getvalue()

    kit.produce(est.t("avro"), (Rec(frame({"id": f"o{i}", "total": 1.0 * i,
                                           "ship_to": {"street": "Main", "city": "X"}}))
                                for i in range(6)))
    kit.produce_serialized(est.t("jsonschema"), kit.json_schema_serializer(JSON_SCHEMA),
                           [{"id": f"p{i}", "amount": i * 2.5} for i in range(6)])
    est.subjects["jsonschema"] = f"{est.t('jsonschema')}-value"
    cls = _proto_class(p)
    kit.produce_serialized(est.t("proto"), kit.protobuf_serializer(cls),
                           [cls(id=f"s{i}") for i in range(6)])
    est.subjects["proto"] = f"{est.t('proto')}-value"
    est.subjects["proto-dep"] = f"{p}/address.proto"


def _seed_groups(est: SeededEstate) -> None:
    kit, p = est.kit, est.prefix
    orders = est.t("orders")
    ends = kit.end_offsets(orders, 3)
    est.groups["billing"] = f"{p}-billing"
    kit.commit_group(est.g("billing"), {(orders, part): end for part, end in ends.items()})
    est.groups["shipping"] = f"{p}-shipping"
    # 12 records behind: 4 per partition.
    kit.commit_group(est.g("shipping"), {(orders, part): end - 4 for part, end in ends.items()})
    # A stopped Kafka Streams application: its group (the application.id) has read its own
    # repartition topic to the end; its changelog and repartition topics are named after it.
    repartition = est.t("app-x-repartition")
    est.groups["app"] = f"{p}-app"
    kit.commit_group(est.g("app"), dict(
        ((repartition, part), end) for part, end in kit.end_offsets(repartition, 2).items()))


def _live_member(est: SeededEstate) -> threading.Thread:
    """A group with an active member on -events that has read and committed everything."""
    est.groups["live"] = f"{est.prefix}-live"
    ready = threading.Event()

    def run() -> None:
        consumer = Consumer({"bootstrap.servers": est.stack.bootstrap_servers,
                             "group.id": est.g("live"), "client.id": "live-client",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([est.t("events")])
        seen = 0
        try:
            while not est.live_stop.is_set():
                msg = consumer.poll(0.2)
                if msg is not None and not msg.error():
                    seen += 1
                    if seen >= 10:
                        consumer.commit(asynchronous=False)
                        ready.set()
        finally:
            consumer.close()

    thread = threading.Thread(target=run, name="audit-live-member", daemon=True)
    thread.start()
    assert ready.wait(60), "the live consumer never read -events"
    return thread


def _seed_connector(est: SeededEstate, tmp: Path) -> None:
    assert est.stack.connect_url
    source = tmp / "connect-in.txt"
    source.write_text("first line\nsecond line\n")
    est.connector = f"{est.prefix}-file-src"
    config = {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "tasks.max": "1",
        "file": str(source),
        "topic": est.t("connect-in"),
        "connection.password": est.connector_secret,
        "connection.url": f"jdbc:postgresql://db:5432/x?user=app&password={est.connector_secret}",
    }
    r = httpx.put(f"{est.stack.connect_url}/connectors/{est.connector}/config", json=config,
                  timeout=30)
    assert r.status_code in (200, 201), r.text
    wait_until(lambda: httpx.get(f"{est.stack.connect_url}/connectors/{est.connector}/status",
                                 timeout=10).json(), 60, interval=0.5,
               until=lambda status: status.get("tasks") and status["tasks"][0].get("state") == "RUNNING",
               what=f"connector {est.connector} to run")


@pytest.fixture(scope="session")
def estate(kafka_stack: EstateInfo, kafka: KafkaKit,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededEstate]:
    est = SeededEstate(prefix=f"aud-{uuid.uuid4().hex[:8]}", stack=kafka_stack, kit=kafka)
    _seed_topics(est)
    _seed_schemas(est)
    _seed_groups(est)
    thread = _live_member(est)
    _seed_connector(est, tmp_path_factory.mktemp("audit-connect"))
    try:
        yield est
    finally:
        est.live_stop.set()
        thread.join(10)
        if est.connector and kafka_stack.connect_url:
            httpx.delete(f"{kafka_stack.connect_url}/connectors/{est.connector}", timeout=10)


class BackgroundProducer:
    """Writes to a topic at a steady pace while a test's audit samples throughput."""

    def __init__(self, bootstrap: str, topic: str, per_second: float = 40.0) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        self._topic = topic
        self._interval = 1.0 / per_second
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self._producer.produce(self._topic, b"click")
            self._producer.poll(0)
            self.sent += 1
            time.sleep(self._interval)
        self._producer.flush(10)

    def __enter__(self) -> BackgroundProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


__all__ = ["CONNECTOR_SECRET", "LARGE_RECORD", "BackgroundProducer", "SeededEstate", "TopicPartition"]
