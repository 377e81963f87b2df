"""Prometheus metrics of one bridge, on its own registry, plus ``/healthz`` and ``/readyz``.

Names follow ``bridge_<event>``: records received, delivered (by route and status), latency,
batches, retries, dead letters, in-flight records/bytes, consumer lag and committed offset per
partition. :class:`MetricsServer` serves ``/metrics`` (text format), ``/healthz`` (200 while the
loop has ticked in the last 30 s) and ``/readyz`` (200 once the bridge owns partitions or has
joined its group, 503 before and while stopping).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["BridgeMetrics", "MetricsServer"]


class BridgeMetrics:
    """The metric handles, created once."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "bridge_records_received", "Records polled from Kafka.", ["topic"], registry=r
        )
        self.delivered = Counter(
            "bridge_records_delivered",
            "Record outcomes by route and status (ok, dead_lettered, skipped).",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "bridge_delivery_latency_seconds",
            "From poll to accepted by the destination.",
            ["route"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.batches = Counter(
            "bridge_batches", "Batches sent by route and outcome.", ["route", "outcome"], registry=r
        )
        self.retries = Counter("bridge_retries", "Messages scheduled for retry.", ["route"], registry=r)
        self.dead_lettered = Counter(
            "bridge_dead_lettered", "Records sent to the dead-letter topic.", ["route", "reason"],
            registry=r,
        )
        self.in_flight_records = Gauge(
            "bridge_in_flight_records", "Records polled and not yet settled.", registry=r
        )
        self.in_flight_bytes = Gauge(
            "bridge_in_flight_bytes", "Bytes polled and not yet settled.", registry=r
        )
        self.lag = Gauge(
            "bridge_consumer_lag", "High watermark minus committed offset.", ["topic", "partition"],
            registry=r,
        )
        self.committed = Gauge(
            "bridge_committed_offset", "Last committed offset.", ["topic", "partition"], registry=r
        )
        self.paused = Gauge("bridge_paused_partitions", "Partitions paused for backpressure.",
                            registry=r)
        self.heartbeat = time.monotonic()
        self.ready = False

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """Serves a :class:`BridgeMetrics` over HTTP in a daemon thread."""

    def __init__(self, metrics: BridgeMetrics, port: int, host: str = "0.0.0.0") -> None:
        m = metrics

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, m.render(), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    alive = time.monotonic() - m.heartbeat < 30
                    self._reply(200 if alive else 503, b"ok\n" if alive else b"stalled\n")
                elif path == "/readyz":
                    self._reply(200 if m.ready else 503, b"ready\n" if m.ready else b"not ready\n")
                else:
                    self._reply(404, b"not found\n")

            def _reply(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
