"""QStashSink against the local QStash server, delivering to real endpoints."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.qstash_sink import QStashSink
from connectors.sink import Message, Record, dedup_id
from connectors.workflow_sink import WorkflowSink
from migrator.bridge.config import PublishUrlDestination, WorkflowDestination
from migrator.errors import PermanentDeliveryError, RetryableDeliveryError
from tests.fixtures.endpoint import RecordingEndpoint

pytestmark = pytest.mark.qstash


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def message(offset: int, body: bytes = b'{"ok":true}', topic: str = "orders") -> Message:
    rec = Record(topic, 1, offset, b"key-1", body, [("trace", b"t-1")], 1_700_000_000_123)
    return Message(rec, body, "application/json", dedup_id("abcdef0123", topic, 1, offset))


def sink(server: Any, client: httpx.Client, url: str, **options: Any) -> QStashSink:
    dest = PublishUrlDestination.model_validate({"kind": "publish-url", "url": url, **options})
    return QStashSink(dest, base_url=server.url, token=server.token, client=client, name="orders")


def test_batch_publishes_with_forwarded_headers_and_dedups_replays(
    qstash_server: Any, endpoint: RecordingEndpoint, client: httpx.Client
) -> None:
    s = sink(qstash_server, client, endpoint.url + "/in", retries=2, label="orders",
             headers={"X-Team": "pay"},
             flow_control={"key": "{topic}-{partition}", "parallelism": 4})
    batch = [message(i) for i in range(5)]
    assert s.write_batch(batch) == [None] * 5
    assert s.write_batch(batch[:2]) == [None, None]  # replay: 202 deduplicated, still success
    got = endpoint.wait_for(5)
    time.sleep(0.5)
    assert len(endpoint.requests) == 5
    h = got[0].headers
    assert h["kafka-topic"] == "orders" and h["kafka-partition"] == "1"
    assert h["kafka-key"] == "key-1" and h["kafka-header-trace"] == "t-1"
    assert h["kafka-timestamp"] == "1700000000123" and h["x-team"] == "pay"
    assert h["content-type"] == "application/json"
    assert h["upstash-signature"]
    assert sorted(int(r.headers["kafka-offset"]) for r in got) == [0, 1, 2, 3, 4]


def test_non_utf8_bodies_go_through_publish(
    qstash_server: Any, endpoint: RecordingEndpoint, client: httpx.Client
) -> None:
    s = sink(qstash_server, client, endpoint.url)
    raw = bytes(range(256))
    m = message(100, raw)
    assert s.write_batch([m, message(101)]) == [None, None]
    got = endpoint.wait_for(2)
    assert raw in [r.body for r in got]


def test_item_errors_fail_alone(
    qstash_server_factory: Any, endpoint: RecordingEndpoint, client: httpx.Client
) -> None:
    server = qstash_server_factory(plan="free", accept_only=True)
    s = sink(server, client, endpoint.url)
    big = b'"' + b"x" * 1_100_000 + b'"'
    results = s.write_batch([message(1), message(2, big), message(3)])
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], PermanentDeliveryError)


def test_request_level_faults_are_retryable_with_the_reset_wait(
    qstash_server_factory: Any, endpoint: RecordingEndpoint, client: httpx.Client
) -> None:
    server = qstash_server_factory(accept_only=True, fault_rate=1.0, fault_statuses=(429,))
    results = sink(server, client, endpoint.url).write_batch([message(1), message(2)])
    assert all(isinstance(r, RetryableDeliveryError) and r.status == 429 for r in results)
    assert all(isinstance(r, RetryableDeliveryError) and r.outage for r in results)  # QStash's
    first = results[0]
    assert isinstance(first, RetryableDeliveryError) and first.retry_after is not None  # Burst-RateLimit-Reset
    server.set_faults(1.0, (503,))
    results = sink(server, client, endpoint.url).write_batch([message(3)])
    assert isinstance(results[0], RetryableDeliveryError) and results[0].status == 503
    server.set_faults(0.0)
    assert sink(server, client, endpoint.url).write_batch([message(3)]) == [None]


def test_bad_token_is_permanent_and_unreachable_is_retryable(
    qstash_server: Any, endpoint: RecordingEndpoint, client: httpx.Client
) -> None:
    dest = PublishUrlDestination(kind="publish-url", url=endpoint.url)
    bad = QStashSink(dest, base_url=qstash_server.url, token="wrong", client=client, name="x")
    assert isinstance(bad.write_batch([message(1)])[0], PermanentDeliveryError)
    gone = QStashSink(dest, base_url="http://127.0.0.1:9", token="t", client=client, name="x")
    result = gone.write_batch([message(1)])[0]
    assert isinstance(result, RetryableDeliveryError) and result.outage


def test_workflow_sink_starts_a_run_by_publishing_to_the_endpoint(
    qstash_server: Any, endpoint: RecordingEndpoint, client: httpx.Client
) -> None:
    dest = WorkflowDestination(kind="workflow", url=endpoint.url + "/wf")
    s = WorkflowSink(dest, base_url=qstash_server.url, token=qstash_server.token, client=client,
                     name="wf")
    assert s.write_batch([message(7, b'{"order":7}')]) == [None]
    got = endpoint.wait_for(1)
    assert got[0].path == "/wf" and got[0].body == b'{"order":7}'
    assert "upstash-workflow-sdk-version" not in got[0].headers  # a first invocation


def test_sent_batches_leave_no_reference_cycles(
    qstash_server_factory: Any, endpoint: RecordingEndpoint, client: httpx.Client
) -> None:
    """The bridge runs the cyclic collector rarely, so a batch's request and body must be freed
    by reference counting (httpx's Response <-> stream cycle is broken after reading)."""
    import gc

    from connectors.http_sink import HttpSink
    from migrator.bridge.config import DirectHttpDestination

    server = qstash_server_factory(accept_only=True)
    s = sink(server, client, endpoint.url)
    direct = HttpSink(DirectHttpDestination(kind="direct-http", url=endpoint.url), client=client,
                      name="direct")
    assert s.write_batch([message(1)]) == [None]  # warm: connections and lazy imports
    assert direct.write_batch([message(1)]) == [None]
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        assert s.write_batch([message(i) for i in range(2, 12)]) == [None] * 10
        assert direct.write_batch([message(20), message(21)]) == [None, None]
        gc.collect()
        leaked = {type(o).__name__ for o in gc.garbage} & {"Request", "Response", "ByteStream"}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not leaked
