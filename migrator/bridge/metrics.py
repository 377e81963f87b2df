"""Prometheus metrics of one bridge, on its own registry, plus ``/healthz`` and ``/readyz``.

Names follow ``bridge_<event>``: records received, delivered (by route and status), latency,
batches, retries, dead letters, in-flight records/bytes, consumer lag and committed offset per
partition. The latency histogram is :class:`LatencyHistogram`, which takes weighted
observations: the records of a batch that were polled together share one latency, so the
bridge observes them with one call instead of one locked call per record (prometheus_client's
``Histogram.observe`` costs about as much as the rest of a record's delivery bookkeeping).
:class:`MetricsServer` serves ``/metrics`` (text format), ``/healthz`` (200 while the
loop has ticked in the last 30 s) and ``/readyz`` (200 once the bridge owns partitions or has
joined its group; 503 before and while stopping, after its partitions were lost until it has
rejoined, while a destination is unavailable, while records are in flight but none was delivered
for ``stall_after`` seconds, and while no broker connection has been up for ``stall_after``
seconds; the body says which).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import HistogramMetricFamily, Metric

__all__ = ["BridgeMetrics", "LatencyHistogram", "MetricsServer"]

STALL_AFTER = 60.0  # seconds with records in flight and none delivered: /readyz says stalled
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class LatencyHistogram:
    """A labelled Prometheus histogram whose children take ``observe(value, count)``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        label: str,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._doc = documentation
        self._label = label
        self._bounds = [float(b) for b in buckets]
        self._les = [*map(str, self._bounds), "+Inf"]
        self._children: dict[str, LatencyHistogram.Child] = {}
        self._lock = threading.Lock()
        registry.register(self)

    class Child:
        """One label value's buckets (non-cumulative counts; the last is +Inf)."""

        __slots__ = ("_bounds", "_lock", "counts", "total")

        def __init__(self, bounds: list[float], lock: threading.Lock) -> None:
            self._bounds = bounds
            self._lock = lock
            self.counts = [0] * (len(bounds) + 1)
            self.total = 0.0

        def observe(self, value: float, count: int = 1) -> None:
            """``count`` observations of ``value`` seconds."""
            i = bisect.bisect_left(self._bounds, value)
            with self._lock:
                self.counts[i] += count
                self.total += value * count

    def labels(self, value: str) -> LatencyHistogram.Child:
        child = self._children.get(value)
        if child is None:
            with self._lock:
                child = self._children.setdefault(value, self.Child(self._bounds, self._lock))
        return child

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._doc, labels=[self._label])
        with self._lock:
            snapshot = [(k, list(c.counts), c.total) for k, c in self._children.items()]
        for value, counts, total in snapshot:
            buckets, running = [], 0
            for le, n in zip(self._les, counts, strict=True):
                running += n
                buckets.append((le, float(running)))
            family.add_metric([value], buckets, total)
        yield family


class BridgeMetrics:
    """The metric handles, created once."""

    def __init__(self, stall_after: float = STALL_AFTER) -> None:
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
        self.latency = LatencyHistogram(
            "bridge_delivery_latency_seconds",
            "From poll to accepted by the destination.",
            "route",
            LATENCY_BUCKETS,
            r,
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
        self.unavailable = Gauge(
            "bridge_destination_unavailable",
            "1 while a destination's last batch failed as an outage (QStash or the endpoint "
            "refusing or unreachable as a whole: records are held, not dead-lettered), else 0.",
            ["route"], registry=r,
        )
        self.heartbeat = time.monotonic()
        self.ready = False
        # for /readyz: set by the loop (in_flight, progress) and the settler (unavailable_routes)
        self.stall_after = stall_after
        self.in_flight = 0
        self.progress = time.monotonic()  # last delivery, or last moment nothing was in flight
        self.unavailable_routes: set[str] = set()
        self.kafka_down_since: float | None = None  # no broker connection up since (the loop)

    def not_ready(self, now: float) -> str | None:
        """Why ``/readyz`` answers 503 now, or None when ready."""
        down = self.kafka_down_since
        if down is not None and now - down >= self.stall_after:
            # first: the most specific reason (losing the partitions follows from it)
            return f"kafka unreachable: no broker connection up for {now - down:.0f}s"
        if not self.ready:
            return "not ready"
        if self.unavailable_routes:
            return "destination unavailable: " + ", ".join(sorted(self.unavailable_routes))
        idle = now - self.progress
        if self.in_flight and idle >= self.stall_after:
            return (f"stalled: {self.in_flight} records in flight, none delivered for "
                    f"{idle:.0f}s")
        return None

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
                    why = m.not_ready(time.monotonic())
                    self._reply(503 if why else 200, f"{why or 'ready'}\n".encode())
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
