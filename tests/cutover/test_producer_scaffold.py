"""The plan's producer scaffolds: the Python one publishes through the official `qstash` SDK to
the local QStash server and reaches the endpoint with the Kafka key and headers forwarded and
the bridge's header-derived deduplication id; the TypeScript one type-checks against
`@upstash/qstash`."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.qstash_sink import header_dedup_id
from connectors.sink import Record
from migrator.bridge.config import BridgeConfig
from migrator.plan.scaffold.producers import producer_files
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.qstash import QStashServer

pytestmark = pytest.mark.timeout(120)


def _config(first: str, second: str) -> BridgeConfig:
    return BridgeConfig.model_validate({
        "kafka": {"bootstrap_servers": "127.0.0.1:9"},
        "routes": [
            {"topic": "orders.v1", "destinations": [
                {"kind": "publish-url", "url": first, "retries": 2, "label": "orders",
                 "flow_control": {"key": "{topic}-{key}", "parallelism": 2},
                 "replaces_group": "billing"},
                {"kind": "enqueue-queue", "url": second, "queue": "ship-{partition}",
                 "replaces_group": "shipping"}]},
            {"topic": "audit", "destinations": [
                {"kind": "direct-http", "url": first}]},
        ]})


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("orders_producer_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_python_producer_scaffold_publishes_through_the_sdk_and_dedups_like_the_bridge(
    endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    server = qstash_server_factory()
    billing, shipping = endpoint_factory(), endpoint_factory()
    files = producer_files(_config(billing.url, shipping.url))
    assert sorted(files) == ["producers/python/orders_v1_producer.py",
                             "producers/typescript/orders_v1.ts"], "direct routes get none"
    path = tmp_path / "orders_v1_producer.py"
    path.write_text(files["producers/python/orders_v1_producer.py"])
    producer = _load(path)
    record = Record("orders.v1", 0, 5, b"customer-3", b"{}", [("event-id", b"order-7")], None)
    assert producer.dedup_id("order-7", billing.url) == header_dedup_id(
        record, "event-id", billing.url)
    assert producer.dedup_id("order 8/x", shipping.url) == header_dedup_id(
        Record("orders.v1", 0, 6, None, b"", [("event-id", b"order 8/x")], None), "event-id",
        shipping.url)
    client = server.client()
    ids = producer.publish(client, b'{"id": 7}', event_id="order-7", key="customer-3",
                           headers={"trace": "t-1"}, partition=1)
    assert len(ids) == 2
    for ep in (billing, shipping):
        got = ep.wait_for(1, timeout=30)
        assert got[0].body == b'{"id": 7}'
        assert got[0].headers["kafka-topic"] == "orders.v1"
        assert got[0].headers["kafka-key"] == "customer-3"
        assert got[0].headers["kafka-header-trace"] == "t-1"
    again = producer.publish(client, b'{"id": 7}', event_id="order-7", key="customer-3")
    assert sorted(again) == sorted(ids), "the second publish was not deduplicated"
    time.sleep(1.0)
    assert len(billing.requests) == 1 and len(shipping.requests) == 1
    queues = {q.name for q in client.queue.list()}
    assert "ship-1" in queues, queues


@pytest.mark.skipif(
    not os.environ.get("SCAFFOLD_TS_CHECK_DIR"),
    reason="set SCAFFOLD_TS_CHECK_DIR to a directory with node_modules holding typescript, "
    "@upstash/qstash and @types/node (tests/plan/tscheck) to type-check the TypeScript "
    "producer scaffold",
)
def test_typescript_producer_scaffold_type_checks(tmp_path: Path) -> None:
    tools = Path(os.environ["SCAFFOLD_TS_CHECK_DIR"])
    files = producer_files(_config("https://example.com/a", "https://example.com/b"))
    src = tmp_path / "src" / "orders_v1.ts"
    src.parent.mkdir(parents=True)
    src.write_text(files["producers/typescript/orders_v1.ts"])
    (tmp_path / "node_modules").symlink_to(tools / "node_modules")
    (tmp_path / "tsconfig.json").write_text(json.dumps({"compilerOptions": {
        "target": "ES2022", "module": "ESNext", "moduleResolution": "Bundler", "strict": True,
        "noEmit": True, "skipLibCheck": True, "lib": ["ES2022", "DOM"], "types": ["node"]},
        "include": ["src/**/*.ts"]}))
    result = subprocess.run([str(tools / "node_modules/.bin/tsc"), "-p", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
