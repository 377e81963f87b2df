"""The read-only admin wrapper: batching (no per-topic round trips), error mapping, real calls."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from migrator.config import KafkaConnection
from migrator.errors import KafkaAuthError, KafkaUnavailableError
from migrator.kafka import admin as admin_mod
from migrator.kafka.admin import KafkaAdmin
from migrator.kafka.answers import map_kafka_error
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.stack import EstateInfo


def _done(value: Any) -> concurrent.futures.Future[Any]:
    f: concurrent.futures.Future[Any] = concurrent.futures.Future()
    f.set_result(value)
    return f


class _Desc:
    def __init__(self, name: str) -> None:
        self.name, self.is_internal = name, False
        self.partitions: list[Any] = []


class _Info:
    offset = 7


class CountingClient:
    """Stands in for AdminClient to count requests (real calls are tested against the stack)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.sizes: dict[str, list[int]] = {}

    def _count(self, name: str, size: int) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        self.sizes.setdefault(name, []).append(size)

    def poll(self, timeout: float) -> int:
        return 0

    def describe_topics(self, collection: Any, **kw: Any) -> dict[str, Any]:
        names = collection.topic_names
        self._count("describe_topics", len(names))
        return {n: _done(_Desc(n)) for n in names}

    def describe_configs(self, resources: list[Any], **kw: Any) -> dict[Any, Any]:
        self._count("describe_configs", len(resources))
        return {r: _done({}) for r in resources}

    def list_offsets(self, request: dict[Any, Any], **kw: Any) -> dict[Any, Any]:
        self._count("list_offsets", len(request))
        return {tp: _done(_Info()) for tp in request}


def test_calls_are_batched_not_per_topic() -> None:
    client = CountingClient()
    admin = KafkaAdmin(KafkaConnection.build(bootstrap_servers="x:1"), timeout=5, client=client)
    names = [f"t{i}" for i in range(2500)]
    assert len(admin.describe_topics(names)) == 2500
    admin.describe_topic_configs(names)
    offsets = admin.list_offsets([(n, p) for n in names for p in range(3)], "latest")
    assert len(offsets) == 7500 and set(offsets.values()) == {7}
    assert client.calls == {"describe_topics": 3, "describe_configs": 3, "list_offsets": 1}
    assert client.sizes["describe_topics"] == [1000, 1000, 500]


def test_error_mapping() -> None:
    auth = map_kafka_error(KafkaException(KafkaError(KafkaError._AUTHENTICATION, "bad creds")),
                           "x", "h:1")
    assert isinstance(auth, KafkaAuthError) and "h:1" in str(auth)
    down = map_kafka_error(KafkaException(KafkaError(KafkaError._TRANSPORT, "refused")), "x", "h:1")
    assert isinstance(down, KafkaUnavailableError)
    slow = map_kafka_error(concurrent.futures.TimeoutError(), "a cluster description", "h:1")
    assert isinstance(slow, KafkaUnavailableError) and "--timeout" in str(slow)


def test_unreachable_cluster_raises_unavailable() -> None:
    admin = KafkaAdmin(KafkaConnection.build(bootstrap_servers="127.0.0.1:9"), timeout=3)
    with pytest.raises(KafkaUnavailableError, match=r"127\.0\.0\.1:9"):
        admin.describe_cluster()


@pytest.mark.stack
def test_real_calls_against_the_stack(kafka_stack: EstateInfo, kafka: KafkaKit) -> None:
    topic = kafka.create_topic(unique("adm"), 2, {"retention.ms": "3600000"})
    kafka.produce(topic, [Rec(b"v")] * 3)
    group = unique("adm-group")
    kafka.commit_group(group, {(topic, 0): 1})
    admin = KafkaAdmin(KafkaConnection.build(bootstrap_servers=kafka_stack.bootstrap_servers),
                       timeout=20)
    cluster = admin.describe_cluster()
    assert cluster.brokers and cluster.controller_id is not None
    assert topic in admin.list_topic_names()
    desc = admin.describe_topics([topic, "does-not-exist-" + topic])
    assert list(desc) == [topic] and [p.partition for p in desc[topic].partitions] == [0, 1]
    configs = admin.describe_topic_configs([topic])[topic]
    assert configs["retention.ms"].value == "3600000" and configs["retention.ms"].source == "topic"
    assert configs["cleanup.policy"].is_default
    high = admin.list_offsets([(topic, 0), (topic, 1)], "latest")
    low = admin.list_offsets([(topic, 0), (topic, 1)], "earliest")
    assert sum(high.values()) == 3 and set(low.values()) == {0}
    assert group in {g.group_id for g in admin.list_groups()}
    assert admin.describe_groups([group])[group].state == "EMPTY"
    assert admin.list_group_offsets([group])[group] == {(topic, 0): 1}


@pytest.mark.stack
def test_wrong_scram_password_is_an_auth_error(kafka_stack: EstateInfo) -> None:
    assert kafka_stack.sasl_bootstrap_servers
    conn = KafkaConnection.build(
        bootstrap_servers=kafka_stack.sasl_bootstrap_servers,
        x_options=["security.protocol=SASL_PLAINTEXT", "sasl.mechanism=SCRAM-SHA-256",
                   f"sasl.username={kafka_stack.sasl_username}", "sasl.password=wrong"])
    with pytest.raises(KafkaAuthError) as info:
        KafkaAdmin(conn, timeout=10).describe_cluster()
    assert "wrong" not in str(info.value)


def test_batch_sizes_are_sane() -> None:
    assert admin_mod.TOPIC_BATCH >= 500 and admin_mod.OFFSET_BATCH >= 10_000
