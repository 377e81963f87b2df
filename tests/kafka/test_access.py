"""Pure mapping of librdkafka errors to access denials, and the admin wrapper degrading on them."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from migrator.config import KafkaConnection
from migrator.errors import KafkaAuthError
from migrator.kafka.access import CLUSTER_RESOURCE, AccessDenied, denial_for
from migrator.kafka.admin import KafkaAdmin
from migrator.kafka.errors import is_authentication_error, is_authorization_error


@pytest.mark.parametrize(("code", "expected"), [
    (KafkaError.TOPIC_AUTHORIZATION_FAILED, AccessDenied("topic", "orders", "Read", "sampling")),
    (KafkaError.GROUP_AUTHORIZATION_FAILED, AccessDenied("group", "billing", "Read", "sampling")),
    (KafkaError.CLUSTER_AUTHORIZATION_FAILED,
     AccessDenied("cluster", CLUSTER_RESOURCE, "Read", "sampling")),
])
def test_authorization_errors_name_the_refused_resource(code: int, expected: AccessDenied) -> None:
    assert is_authorization_error(code) and not is_authentication_error(code)
    assert denial_for(code, operation="Read", what="sampling", topic="orders",
                      group="billing") == expected


@pytest.mark.parametrize("code", [KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED,
                                  KafkaError._SSL, KafkaError._TRANSPORT, KafkaError._TIMED_OUT,
                                  KafkaError.UNKNOWN_TOPIC_OR_PART])
def test_other_errors_are_no_denial(code: int) -> None:
    assert denial_for(code, operation="Describe", what="x", topic="t") is None
    assert not is_authorization_error(code)
    assert is_authentication_error(code) == (code in (KafkaError._AUTHENTICATION,
                                                      KafkaError.SASL_AUTHENTICATION_FAILED,
                                                      KafkaError._SSL))


def _failed(code: int) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_exception(KafkaException(KafkaError(code, "refused")))
    return future


class _Resource:
    def __init__(self, name: str) -> None:
        self.name = name


class RefusingClient:
    """Answers every per-resource request with the given error (as librdkafka does)."""

    def __init__(self, code: int) -> None:
        self.code = code

    def poll(self, _timeout: float) -> None:
        return None

    def describe_consumer_groups(self, ids: list[str], **_kw: Any) -> dict[str, Any]:
        return {g: _failed(self.code) for g in ids}

    def list_consumer_group_offsets(self, requests: list[Any], **_kw: Any) -> dict[str, Any]:
        return {r.group_id: _failed(self.code) for r in requests}

    def list_offsets(self, request: dict[Any, Any], **_kw: Any) -> dict[Any, Any]:
        return {tp: _failed(self.code) for tp in request}

    def describe_configs(self, resources: list[Any], **_kw: Any) -> dict[Any, Any]:
        return {_Resource(r.name): _failed(self.code) for r in resources}


def _admin(code: int) -> KafkaAdmin:
    return KafkaAdmin(KafkaConnection.build(bootstrap_servers="h:1"), timeout=5,
                      client=RefusingClient(code))


def test_refused_groups_and_configs_are_left_out_and_recorded() -> None:
    admin = _admin(KafkaError.GROUP_AUTHORIZATION_FAILED)
    assert admin.describe_groups(["billing"]) == {}
    assert admin.list_group_offsets(["billing"]) == {}
    assert admin.list_group_offsets(["billing"]) == {}  # a repeat is not recorded twice
    assert admin.denied == [
        AccessDenied("group", "billing", "Describe", "describing the group"),
        AccessDenied("group", "billing", "Describe", "reading its committed offsets"),
    ]
    topics = _admin(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    assert topics.describe_topic_configs(["orders"]) == {}
    assert topics.list_offsets([("orders", 0), ("orders", 1)], "latest") == {}
    assert topics.denied == [
        AccessDenied("topic", "orders", "DescribeConfigs", "reading its configs"),
        AccessDenied("topic", "orders", "Describe", "reading its offsets"),
    ]


class _Node:
    def __init__(self, node_id: int) -> None:
        self.id, self.host, self.port = node_id, "h", 9092


class _Metadata:
    cluster_id = "abc"
    controller_id = 2
    brokers = {2: _Node(2), 1: _Node(1)}
    topics: dict[str, Any] = {}


class ClusterRefusingClient(RefusingClient):
    def describe_cluster(self, **_kw: Any) -> concurrent.futures.Future[Any]:
        return _failed(KafkaError.CLUSTER_AUTHORIZATION_FAILED)

    def list_topics(self, **_kw: Any) -> _Metadata:
        return _Metadata()


def test_a_refused_cluster_description_falls_back_to_metadata() -> None:
    admin = KafkaAdmin(KafkaConnection.build(bootstrap_servers="h:1"), timeout=5,
                       client=ClusterRefusingClient(KafkaError.CLUSTER_AUTHORIZATION_FAILED))
    cluster = admin.describe_cluster()
    assert (cluster.cluster_id, cluster.controller_id) == ("abc", 2)
    assert [b.id for b in cluster.brokers] == [1, 2]
    assert admin.denied == [AccessDenied("cluster", CLUSTER_RESOURCE, "Describe",
                                         "describing the cluster")]


def test_other_errors_still_abort() -> None:
    admin = _admin(KafkaError.SASL_AUTHENTICATION_FAILED)
    with pytest.raises(KafkaAuthError):
        admin.describe_groups(["billing"])
    assert admin.denied == []
