from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from connectors.http_sink import HttpSink
from connectors.qstash_sink import QStashSink
from connectors.workflow_sink import WorkflowSink
from migrator.bridge.config import BridgeConfig
from migrator.bridge.routes import build_routes
from migrator.config import QStashConnection
from migrator.errors import ConfigError

ROUTES = {"routes": [
    {"topic": "orders", "destinations": [
        {"kind": "publish-url", "url": "https://a.example/x"},
        {"kind": "workflow", "url": "https://a.example/wf"},
        {"kind": "direct-http", "url": "https://a.example/x"}]},
    {"topic": "refunds", "name": "money-back", "destinations": [
        {"kind": "enqueue-queue", "queue": "q-{partition}", "url": "https://a.example/x"}]},
]}


def test_each_destination_gets_its_sink_and_a_stable_distinct_id_prefix() -> None:
    cfg = BridgeConfig.model_validate(ROUTES)
    with httpx.Client() as client:
        routes = build_routes(cfg, client, QStashConnection(url="http://q", token=SecretStr("t")))
        again = build_routes(cfg, client, QStashConnection(url="http://q", token=SecretStr("t")))
    orders = routes["orders"].destinations
    assert [type(d.sink) for d in orders] == [QStashSink, WorkflowSink, HttpSink]
    assert [d.index for d in orders] == [0, 1, 2]
    assert [d.name for d in orders] == ["orders/0", "orders/1", "orders/2"]
    prefixes = [d.id_prefix for rt in routes.values() for d in rt.destinations]
    assert len(set(prefixes)) == 4
    assert prefixes == [d.id_prefix for rt in again.values() for d in rt.destinations]
    assert routes["refunds"].destinations[0].name == "money-back"
    assert all(p.startswith("kb-") and p.endswith("-") for p in prefixes)


def test_missing_settings_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = BridgeConfig.model_validate(ROUTES)
    with httpx.Client() as client, pytest.raises(ConfigError, match="QSTASH_TOKEN"):
        build_routes(cfg, client, None)
    monkeypatch.delenv("SCHEMA_REGISTRY_URL", raising=False)
    decode = BridgeConfig.model_validate({"routes": [{"topic": "t", "payload": {"mode": "decode"},
        "destinations": [{"kind": "direct-http", "url": "http://h/x"}]}]})
    with httpx.Client() as client, pytest.raises(ConfigError, match="schema_registry_url"):
        build_routes(decode, client, None)
