"""Registry and Connect readers against scripted HTTP servers: basic auth is sent, answers are
mapped, failures degrade (the real services are covered in test_seeded_estate.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

from pydantic import SecretStr

from migrator.audit.connect import ConnectReader
from migrator.audit.registry import RegistryReader
from migrator.config import BasicAuth, RestConnection
from tests.fixtures.endpoint import ReceivedRequest, RecordingEndpoint, Reply

AUTH = "Basic " + base64.b64encode(b"auditor:s3cret").decode()


def _conn(url: str) -> RestConnection:
    return RestConnection(url=url, auth=BasicAuth(username="auditor", password=SecretStr("s3cret")),
                          timeout=5)


def _registry(req: ReceivedRequest) -> Reply:
    if req.headers.get("authorization") != AUTH:
        return Reply(401, b'{"error_code":401,"message":"Unauthorized"}')
    answers = {
        "/subjects": ["orders-value", "com.acme.Address"],
        "/config": {"compatibilityLevel": "BACKWARD"},
        "/subjects/orders-value/versions": [1, 2],
        "/subjects/orders-value/versions/latest": {
            "subject": "orders-value", "version": 2, "id": 11, "schemaType": "PROTOBUF",
            "schema": "syntax = \"proto3\";",
            "references": [{"name": "a.proto", "subject": "com.acme.Address", "version": 1}]},
        "/subjects/com.acme.Address/versions": [1],
        "/subjects/com.acme.Address/versions/latest": {
            "subject": "com.acme.Address", "version": 1, "id": 3, "schema": "{}"},
        "/config/orders-value": {"compatibilityLevel": "FULL"},
        "/schemas/ids/11": {"schemaType": "PROTOBUF", "schema": "x"},
        "/schemas/ids/11/versions": [{"subject": "orders-value", "version": 2}],
    }
    body = answers.get(req.path.split("?")[0])
    return Reply(404, b'{"error_code":40401}') if body is None else Reply(200, json.dumps(body).encode())


def test_registry_reader_sends_basic_auth_and_maps_subjects(
        endpoint_factory: Callable[..., RecordingEndpoint]) -> None:
    ep = endpoint_factory(_registry)
    with RegistryReader(_conn(ep.url)) as reader:
        info = reader.read(lambda s: s == "orders-value", existing_topics=["orders"])
        refs = reader.schema_refs([11, 99])
    assert info.status.available and info.global_compatibility == "BACKWARD"
    subjects = {s.subject: s for s in info.subjects}
    # The filtered-out subject is still read because the kept one references it.
    assert set(subjects) == {"orders-value", "com.acme.Address"}
    orders = subjects["orders-value"]
    assert (orders.versions, orders.latest_id, orders.schema_type) == ([1, 2], 11, "PROTOBUF")
    assert (orders.topic, orders.role, orders.compatibility) == ("orders", "value", "FULL")
    assert subjects["com.acme.Address"].schema_type == "AVRO"  # no schemaType means Avro
    assert subjects["com.acme.Address"].compatibility is None
    assert refs[11].schema_type == "PROTOBUF" and refs[11].subjects == ("orders-value",)
    assert 99 not in refs
    assert all(r.headers.get("authorization") == AUTH for r in ep.requests)
    assert all(r.method == "GET" for r in ep.requests)


def test_registry_without_credentials_is_marked_unavailable(
        endpoint_factory: Callable[..., RecordingEndpoint]) -> None:
    ep = endpoint_factory(_registry)
    with RegistryReader(RestConnection(url=ep.url, timeout=5)) as reader:
        info = reader.read()
    assert not info.status.available and info.status.error == "HTTP 401 Unauthorized"
    assert info.subjects == []


def _connect(req: ReceivedRequest) -> Reply:
    if req.headers.get("authorization") != AUTH:
        return Reply(403, b"{}")
    if req.path == "/":
        return Reply(200, b'{"version":"4.1.2","commit":"x","kafka_cluster_id":"c"}')
    if req.path.startswith("/connectors?"):
        assert "expand=info" in req.path and "expand=status" in req.path
        return Reply(200, json.dumps({
            "http-sink": {
                "info": {"name": "http-sink", "type": "sink", "config": {
                    "connector.class": "io.x.HttpSinkConnector", "topics": "orders,payments",
                    "http.api.url": "https://u:p4ss@api.example.com", "api.key": "k3y"}},
                "status": {"connector": {"state": "RUNNING"}, "type": "sink",
                           "tasks": [{"id": 1, "state": "FAILED"}, {"id": 0, "state": "RUNNING"}]}},
            "other": {"info": {"name": "other", "type": "source",
                               "config": {"connector.class": "x.Y", "topic": "elsewhere"}},
                      "status": {"connector": {"state": "PAUSED"}, "tasks": []}},
        }).encode())
    return Reply(404, b"{}")


def test_connect_reader_sends_basic_auth_filters_and_redacts(
        endpoint_factory: Callable[..., RecordingEndpoint]) -> None:
    ep = endpoint_factory(_connect)
    with ConnectReader(_conn(ep.url)) as reader:
        info = reader.read(lambda name, topics: "orders" in topics)
    assert info.status.available and info.version == "4.1.2"
    [sink] = info.connectors
    assert (sink.name, sink.kind, sink.state) == ("http-sink", "sink", "RUNNING")
    assert sink.task_states == ["RUNNING", "FAILED"]  # ordered by task id
    assert sink.topics == ["orders", "payments"]
    dumped = info.model_dump_json()
    assert "p4ss" not in dumped and "k3y" not in dumped
    assert all(r.headers.get("authorization") == AUTH for r in ep.requests)


def test_connect_refusing_is_marked_unavailable(
        endpoint_factory: Callable[..., RecordingEndpoint]) -> None:
    ep = endpoint_factory(_connect)
    with ConnectReader(RestConnection(url=ep.url, timeout=5)) as reader:
        info = reader.read()
    assert not info.status.available and info.status.error == "HTTP 403 Forbidden"
