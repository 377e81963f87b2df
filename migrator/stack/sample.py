"""A small sample estate for the demo and for trying the toolkit: the shapes a real migration meets.

    <p>.orders           3 partitions, keyed JSON, read by `fulfilment` (ordering matters)
    <p>.payments         2 partitions, Schema-Registry framed Avro with a decimal and a timestamp,
                         read by `billing` and `ledger` (fan-out)
    <p>.customers        compacted, keyed, with tombstones (cannot move as is)
    <p>.clicks           unkeyed JSON, read by `analytics` and `marketing` (fan-out, no order)
    <p>.orders.DLQ       the dead-letter topic of the old consumer
    a FileStream sink connector reading <p>.orders

Groups are left with committed offsets (some lag) and no members, as after a consumer stops.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from migrator.errors import StackError
from migrator.stack.state import StackInfo

__all__ = ["PAYMENT_SCHEMA", "SampleEstate", "seed_sample_estate"]

PAYMENT_SCHEMA = {
    "type": "record", "name": "Payment", "namespace": "shop",
    "fields": [
        {"name": "payment_id", "type": "string"},
        {"name": "order_id", "type": "string"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "paid_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


@dataclass(frozen=True)
class SampleEstate:
    prefix: str
    topics: dict[str, int]
    groups: dict[str, list[str]]
    records: dict[str, int]
    connector: str | None


def seed_sample_estate(info: StackInfo, prefix: str = "shop", *, orders: int = 300,
                       payments: int = 120, clicks: int = 200, seed: int = 7) -> SampleEstate:
    """Create the sample topics, records, groups, schema and connector on the stack."""
    rng = random.Random(seed)
    conf: dict[str, str | int | float | bool] = {"bootstrap.servers": info.bootstrap_servers}
    admin = AdminClient(conf)
    topics = {f"{prefix}.orders": 3, f"{prefix}.payments": 2, f"{prefix}.customers": 1,
              f"{prefix}.clicks": 2, f"{prefix}.orders.DLQ": 1}
    configs = {f"{prefix}.customers": {"cleanup.policy": "compact"}}
    existing = set(admin.list_topics(timeout=30).topics)
    new = [NewTopic(t, num_partitions=n, replication_factor=1, config=configs.get(t, {}))
           for t, n in topics.items() if t not in existing]
    if new:
        for topic, future in admin.create_topics(new, operation_timeout=30).items():
            try:
                future.result(timeout=60)
            except Exception as exc:
                raise StackError(f"Could not create sample topic {topic}: {exc}") from None
    producer = Producer({**conf, "linger.ms": 5})
    for i in range(orders):
        customer = f"c-{rng.randrange(40):03d}"
        order = {"order_id": f"o-{i:05d}", "customer": customer,
                 "total": round(rng.uniform(5, 500), 2), "status": "created"}
        producer.produce(f"{prefix}.orders", json.dumps(order).encode(), key=customer,
                         headers=[("source", b"web"), ("trace-id", f"{rng.getrandbits(64):016x}".encode())])
    for i in range(clicks):
        click = {"page": f"/p/{rng.randrange(20)}", "at": i}
        producer.produce(f"{prefix}.clicks", json.dumps(click).encode())
    for i in range(40):
        key = f"c-{i:03d}"
        producer.produce(f"{prefix}.customers", json.dumps({"id": key, "tier": "gold"}).encode(), key=key)
    for i in range(0, 40, 8):
        producer.produce(f"{prefix}.customers", None, key=f"c-{i:03d}")  # tombstones
    producer.produce(f"{prefix}.orders.DLQ", b'{"order_id":"o-broken"}', key=b"c-000",
                     headers=[("error", b"timeout")])
    _produce_payments(info, producer, f"{prefix}.payments", payments, rng)
    producer.flush(60)
    groups = {f"{prefix}-fulfilment": [f"{prefix}.orders"],
              f"{prefix}-billing": [f"{prefix}.payments"],
              f"{prefix}-ledger": [f"{prefix}.payments"],
              f"{prefix}-analytics": [f"{prefix}.clicks"],
              f"{prefix}-marketing": [f"{prefix}.clicks"]}
    _commit(conf, f"{prefix}-fulfilment", f"{prefix}.orders", 3, behind=10)
    _commit(conf, f"{prefix}-billing", f"{prefix}.payments", 2, behind=0)
    _commit(conf, f"{prefix}-ledger", f"{prefix}.payments", 2, behind=25)
    _commit(conf, f"{prefix}-analytics", f"{prefix}.clicks", 2, behind=0)
    _commit(conf, f"{prefix}-marketing", f"{prefix}.clicks", 2, behind=50)
    connector = _connector(info, prefix)
    return SampleEstate(prefix, topics, groups,
                        {f"{prefix}.orders": orders, f"{prefix}.payments": payments, f"{prefix}.clicks": clicks},
                        connector)


def _produce_payments(info: StackInfo, producer: Producer, topic: str, count: int,
                      rng: random.Random) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    registry = SchemaRegistryClient({"url": info.schema_registry_url, "timeout": 10})
    try:
        serializer = AvroSerializer(registry, json.dumps(PAYMENT_SCHEMA))
        ctx = SerializationContext(topic, MessageField.VALUE)
        start = datetime(2026, 11, 1, tzinfo=UTC)
        for i in range(count):
            value: dict[str, Any] = {
                "payment_id": f"p-{i:05d}", "order_id": f"o-{rng.randrange(300):05d}",
                "amount": Decimal(rng.randrange(100, 50000)) / 100,
                "paid_at": start + timedelta(minutes=i),
            }
            producer.produce(topic, serializer(value, ctx), key=value["order_id"])
    finally:
        registry.close()  # its httpx client's keep-alive connection to the registry


def _commit(conf: dict[str, str | int | float | bool], group: str, topic: str, partitions: int, behind: int) -> None:
    consumer = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
    try:
        offsets = []
        for p in range(partitions):
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            offsets.append(TopicPartition(topic, p, max(0, high - behind // partitions)))
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def _connector(info: StackInfo, prefix: str) -> str | None:
    name = f"{prefix}-orders-archive"
    config = {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
        "tasks.max": "1", "topics": f"{prefix}.orders",
        "file": f"{info.run_dir}/{prefix}-orders-archive.txt",
        "errors.retry.timeout": "60000", "errors.tolerance": "all",
        "errors.deadletterqueue.topic.name": f"{prefix}.orders.DLQ",
    }
    reply = httpx.put(f"{info.connect_url}/connectors/{name}/config", json=config, timeout=30)
    if reply.status_code not in (200, 201):
        raise StackError(f"Kafka Connect refused the sample connector {name}: {reply.status_code} {reply.text[:200]}")
    return name
