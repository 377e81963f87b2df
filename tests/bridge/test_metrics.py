"""Metrics, health and readiness over HTTP, from a running bridge on the real broker."""

from __future__ import annotations

import logging

import httpx
import pytest

from migrator.bridge.metrics import BridgeMetrics, MetricsServer
from migrator.bridge.runner import Bridge
from migrator.bridge.status import JsonFormatter
from migrator.config import KafkaConnection
from tests.bridge.harness import FAST_GROUP, RunningBridge, bridge_config, wait_until
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique


@pytest.mark.stack
def test_metrics_health_and_readiness(kafka: KafkaKit, endpoint: RecordingEndpoint) -> None:
    topic = kafka.create_topic(unique("met"), partitions=1)
    kafka.produce(topic, (Rec(f"v{i}") for i in range(30)))
    metrics = BridgeMetrics()
    server = MetricsServer(metrics, 0, host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert httpx.get(base + "/readyz").status_code == 503
        assert httpx.get(base + "/healthz").status_code == 200
        group = unique("g")
        cfg = bridge_config(group=group, routes=[{"topic": topic, "destinations": [
            {"kind": "direct-http", "url": endpoint.url}]}])
        bridge = Bridge(cfg, KafkaConnection(bootstrap_servers=kafka.bootstrap), metrics=metrics,
                        consumer_overrides=FAST_GROUP)
        rb = RunningBridge(bridge)
        wait_until(lambda: bridge.stats.delivered, until=lambda d: d >= 30, what="30 delivered")
        committed = f'bridge_committed_offset{{group="{group}",partition="0",topic="{topic}"}} 30.0'
        wait_until(lambda: httpx.get(base + "/metrics").text, until=lambda text: committed in text,
                   what=f"/metrics to show {committed}")
        assert httpx.get(base + "/readyz").status_code == 200
        text = httpx.get(base + "/metrics").text
        assert f'bridge_records_received_total{{group="{group}",topic="{topic}"}} 30.0' in text
        assert f'bridge_records_delivered_total{{group="{group}",route="{topic}",status="ok"}} 30.0' in text
        assert "bridge_delivery_latency_seconds_bucket" in text
        assert f'bridge_in_flight_records{{group="{group}"}} 0.0' in text
        lag = f'bridge_consumer_lag{{group="{group}",partition="0",topic="{topic}"}} 0.0'
        wait_until(lambda: httpx.get(base + "/metrics").text, 20, until=lambda text: lag in text,
                   what=f"/metrics to show {lag}")
        rb.stop()
        assert httpx.get(base + "/readyz").status_code == 503
        assert httpx.get(base + "/nope").status_code == 404
    finally:
        server.close()


def test_json_log_lines() -> None:
    rec = logging.LogRecord("migrator.bridge", logging.WARNING, __file__, 1, "x %s", ("y",), None)
    import json

    line = json.loads(JsonFormatter().format(rec))
    assert line["level"] == "warning" and line["message"] == "x y" and line["ts"].endswith("Z")


def test_status_line_renders_on_a_terminal_only() -> None:
    import io

    from migrator.bridge.runner import BridgeStats
    from migrator.bridge.status import StatusLine

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    class FakeBridge:
        stats = BridgeStats(received=10, delivered=7, dead_lettered=1, retries=2)
        in_flight = 2
        paused_count = 0

    tty = Tty()
    line = StatusLine(tty, interval=0)
    line.tick(FakeBridge())  # type: ignore[arg-type]
    line.close()
    out = tty.getvalue()
    assert "10 records read" in out and "7 messages sent" in out and "1 record dead-lettered" in out
    assert out.startswith("\r\x1b[2K") and out.endswith("\n")
    plain = io.StringIO()
    StatusLine(plain, interval=0).tick(FakeBridge())  # type: ignore[arg-type]
    assert plain.getvalue() == ""


def test_the_stop_summary_names_its_units() -> None:
    from migrator.bridge.runner import BridgeStats
    from migrator.bridge.status import summary_line

    line = summary_line(BridgeStats(received=620, delivered=1040, dead_lettered=0, skipped=2, retries=3))
    assert line == ("620 records read, 1,040 messages sent (one per record and destination; QStash "
                    "delivers a URL-group message to each endpoint of the group), 0 records "
                    "dead-lettered, 2 tombstones skipped, 3 retries")


def test_a_requested_stop_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    import os
    import signal
    import time

    from migrator.bridge.stop_signals import StopSignals

    class FakeBridge:
        stopping = False
        stops = 0

        def stop(self) -> None:
            self.stops += 1

    bridge = FakeBridge()
    saved = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    caplog.set_level(logging.INFO, logger="migrator.bridge")  # stop_signals logs under it
    try:
        StopSignals.install().attach(bridge.stop)
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not bridge.stops and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGTERM, saved[0])
        signal.signal(signal.SIGINT, saved[1])
    assert bridge.stops == 1
    (record,) = [r for r in caplog.records if "stop" in r.getMessage()]
    assert record.levelno == logging.INFO, record
    assert "SIGTERM" in record.getMessage() and "signal 15" not in record.getMessage()


def test_groups_on_one_registry_keep_their_own_series_and_leave_none_behind() -> None:
    process = BridgeMetrics()
    a, b = process.for_group("mb.billing"), process.for_group("mb.shipping")
    for view, offset in ((a, 100), (b, 80)):
        view.committed.labels("orders", "0").set(offset)
        view.lag.labels("orders", "0").set(120 - offset)
        view.delivered.labels("orders", "ok").inc(offset)
        view.latency.labels("orders").observe(0.02, 3)
        view.in_flight_records.set(offset // 10)
    get = process.registry.get_sample_value
    assert get("bridge_committed_offset",
               {"group": "mb.billing", "topic": "orders", "partition": "0"}) == 100
    assert get("bridge_committed_offset",
               {"group": "mb.shipping", "topic": "orders", "partition": "0"}) == 80
    assert get("bridge_consumer_lag", {"group": "mb.shipping", "topic": "orders", "partition": "0"}) == 40
    assert get("bridge_delivery_latency_seconds_count", {"group": "mb.billing", "route": "orders"}) == 3
    assert get("bridge_in_flight_records", {"group": "mb.shipping"}) == 8
    # a revoked partition: its lag and committed series go, the rest stays
    a.forget_partition("orders", 0)
    assert get("bridge_consumer_lag", {"group": "mb.billing", "topic": "orders", "partition": "0"}) is None
    assert get("bridge_committed_offset",
               {"group": "mb.billing", "topic": "orders", "partition": "0"}) is None
    assert get("bridge_records_delivered_total",
               {"group": "mb.billing", "route": "orders", "status": "ok"}) == 100
    # a stopped group: none of its series is left, the other group's are untouched
    process.remove_group("mb.billing")
    text = process.render().decode()
    assert 'group="mb.billing"' not in text
    assert text.count('group="mb.shipping"') > 10
    # the view shares the process's health state; /readyz names a group's unavailable route
    # while the group runs, and no longer once its series were removed
    b.ready = True
    assert process.ready and b.not_ready(0.0) is None
    c = process.for_group("mb.ledger")
    c.unavailable_routes.add("orders")
    assert process.not_ready(0.0) == "destination unavailable: mb.ledger/orders"
    process.remove_group("mb.ledger")
    assert process.not_ready(0.0) is None
