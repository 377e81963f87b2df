"""Prometheus metrics of one bridge process, on its own registry, plus ``/healthz`` and ``/readyz``.

Names follow ``bridge_<event>``: records received, delivered (by route and status), latency,
batches, retries, dead letters, in-flight records/bytes, consumer lag and committed offset per
partition. Every series carries ``group``, the Kafka consumer group the bridge reads with: a
process may run several bridges on one registry (``migrator bridge`` gated by the cutover runs
one per replaced group), and each sees the metrics through :meth:`BridgeMetrics.for_group`, a
:class:`GroupMetrics` that puts its group first on every series. So two groups reading one topic
have their own lag and committed-offset series; :meth:`BridgeMetrics.remove_group` drops a
stopped group's series and :meth:`GroupMetrics.forget_partition` a revoked partition's (no stale
lag). The latency histogram is :class:`LatencyHistogram`, which takes weighted
observations: the records of a batch that were polled together share one latency, so the
bridge observes them with one call instead of one locked call per record (prometheus_client's
``Histogram.observe`` costs about as much as the rest of a record's delivery bookkeeping).
:class:`MetricsServer` serves ``/metrics`` (text format), ``/healthz`` (200 while the
loop has ticked in the last 30 s) and ``/readyz`` (200 once the bridge owns partitions or has
joined its group; 503 before and while stopping, after its partitions were lost until it has
rejoined, while a destination is unavailable, while records are in flight but none was delivered
for ``stall_after`` seconds, and while no broker connection has been up for ``stall_after``
seconds; the body says which). ``/healthz`` and ``/readyz`` are the process's, shared by its
bridges.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import HistogramMetricFamily, Metric

__all__ = ["BridgeMetrics", "GroupLabelled", "GroupMetrics", "LatencyHistogram", "MetricsServer"]

STALL_AFTER = 60.0  # seconds with records in flight and none delivered: /readyz says stalled
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class LatencyHistogram:
    """A labelled Prometheus histogram whose children take ``observe(value, count)``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._doc = documentation
        self._labels = list(labels)
        self._bounds = [float(b) for b in buckets]
        self._les = [*map(str, self._bounds), "+Inf"]
        self._children: dict[tuple[str, ...], LatencyHistogram.Child] = {}
        self._lock = threading.Lock()
        registry.register(self)

    class Child:
        """One label set's buckets (non-cumulative counts; the last is +Inf)."""

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

    def labels(self, *values: str) -> LatencyHistogram.Child:
        if len(values) != len(self._labels):
            raise ValueError(f"{self._name}: labels {self._labels} expected, got {values}")
        child = self._children.get(values)
        if child is None:
            with self._lock:
                child = self._children.setdefault(values, self.Child(self._bounds, self._lock))
        return child

    def remove(self, *values: str) -> None:
        with self._lock:
            self._children.pop(values, None)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._doc, labels=self._labels)
        with self._lock:
            snapshot = [(k, list(c.counts), c.total) for k, c in self._children.items()]
        for values, counts, total in snapshot:
            buckets, running = [], 0
            for le, n in zip(self._les, counts, strict=True):
                running += n
                buckets.append((le, float(running)))
            family.add_metric(list(values), buckets, total)
        yield family


C = TypeVar("C")


class GroupLabelled(Generic[C]):
    """A metric family seen through one bridge consumer group: ``labels(*rest)`` is the
    family's child for ``(group, *rest)``. The children handed out are kept (a dict lookup
    instead of the family's locked one); they are what :meth:`clear` removes."""

    __slots__ = ("_children", "_group", "_make", "_remove")

    def __init__(self, make: Callable[..., C], remove: Callable[..., None], group: str) -> None:
        self._make = make
        self._remove = remove
        self._group = group
        self._children: dict[tuple[str, ...], C] = {}

    def labels(self, *values: str) -> C:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._make(self._group, *values)
        return child

    def remove(self, *values: str) -> None:
        """Drop the series of ``values``, if it was ever set."""
        if self._children.pop(values, None) is not None:
            self._remove(self._group, *values)

    def clear(self) -> None:
        """Drop every series of this group."""
        for values in list(self._children):
            self.remove(*values)


class BridgeMetrics:
    """The metric families and the health state of one process, created once."""

    def __init__(self, stall_after: float = STALL_AFTER) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "bridge_records_received", "Records polled from Kafka.", ["group", "topic"], registry=r
        )
        self.delivered = Counter(
            "bridge_records_delivered",
            "Record outcomes by route and status (ok, dead_lettered, skipped).",
            ["group", "route", "status"],
            registry=r,
        )
        self.latency = LatencyHistogram(
            "bridge_delivery_latency_seconds",
            "From poll to accepted by the destination.",
            ["group", "route"],
            LATENCY_BUCKETS,
            r,
        )
        self.batches = Counter(
            "bridge_batches", "Batches sent by route and outcome.", ["group", "route", "outcome"],
            registry=r,
        )
        self.retries = Counter("bridge_retries", "Messages scheduled for retry.", ["group", "route"],
                               registry=r)
        self.dead_lettered = Counter(
            "bridge_dead_lettered", "Records sent to the dead-letter topic.",
            ["group", "route", "reason"], registry=r,
        )
        self.in_flight_records = Gauge(
            "bridge_in_flight_records", "Records polled and not yet settled.", ["group"], registry=r
        )
        self.in_flight_bytes = Gauge(
            "bridge_in_flight_bytes", "Bytes polled and not yet settled.", ["group"], registry=r
        )
        self.lag = Gauge(
            "bridge_consumer_lag", "High watermark minus committed offset.",
            ["group", "topic", "partition"], registry=r,
        )
        self.committed = Gauge(
            "bridge_committed_offset", "Last committed offset.", ["group", "topic", "partition"],
            registry=r,
        )
        self.paused = Gauge("bridge_paused_partitions", "Partitions paused for backpressure.",
                            ["group"], registry=r)
        self.unavailable = Gauge(
            "bridge_destination_unavailable",
            "1 while a destination's last batch failed as an outage (QStash or the endpoint "
            "refusing or unreachable as a whole: records are held, not dead-lettered), else 0.",
            ["group", "route"], registry=r,
        )
        self._groups: dict[str, list[GroupMetrics]] = {}
        self._groups_lock = threading.Lock()
        self.heartbeat = time.monotonic()
        self.ready = False
        # for /readyz: set by the loop (in_flight, progress) and each group's settler (its
        # GroupMetrics.unavailable_routes)
        self.stall_after = stall_after
        self.in_flight = 0
        self.progress = time.monotonic()  # last delivery, or last moment nothing was in flight
        self.kafka_down_since: float | None = None  # no broker connection up since (the loop)

    def for_group(self, group: str) -> GroupMetrics:
        """The metrics as the bridge reading with consumer group ``group`` sets them."""
        view = GroupMetrics(self, group)
        with self._groups_lock:
            self._groups.setdefault(group, []).append(view)
        return view

    def remove_group(self, group: str) -> None:
        """Drop every series of ``group`` (its bridge has stopped: no stale lag stays behind)."""
        with self._groups_lock:
            views = self._groups.pop(group, [])
        for view in views:
            view.clear()

    def not_ready(self, now: float) -> str | None:
        """Why ``/readyz`` answers 503 now, or None when ready."""
        down = self.kafka_down_since
        if down is not None and now - down >= self.stall_after:
            # first: the most specific reason (losing the partitions follows from it)
            return f"kafka unreachable: no broker connection up for {now - down:.0f}s"
        if not self.ready:
            return "not ready"
        unavailable = self._unavailable()
        if unavailable:
            return "destination unavailable: " + ", ".join(unavailable)
        idle = now - self.progress
        if self.in_flight and idle >= self.stall_after:
            return (f"stalled: {self.in_flight} records in flight, none delivered for "
                    f"{idle:.0f}s")
        return None

    def _unavailable(self) -> list[str]:
        """The routes whose destination is unavailable: by name, or ``group/route`` while
        the process runs bridges of several groups (a stopped group's routes are gone)."""
        with self._groups_lock:
            views = [v for vs in self._groups.values() for v in vs]
        names: set[str] = set()
        several = len({v.group for v in views}) > 1
        for view in views:
            names.update(f"{view.group}/{r}" if several else r for r in list(view.unavailable_routes))
        return sorted(names)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class GroupMetrics:
    """One bridge's handles: the process's families with its consumer group bound as the
    ``group`` label, and the process's health state (``ready``, ``heartbeat``, ... are read and
    set on the :class:`BridgeMetrics` it came from, which serves ``/readyz``)."""

    def __init__(self, process: BridgeMetrics, group: str) -> None:
        self.process = process
        self.group = group
        p = process
        self.received = GroupLabelled[Counter](p.received.labels, p.received.remove, group)
        self.delivered = GroupLabelled[Counter](p.delivered.labels, p.delivered.remove, group)
        self.latency = GroupLabelled[LatencyHistogram.Child](p.latency.labels, p.latency.remove,
                                                             group)
        self.batches = GroupLabelled[Counter](p.batches.labels, p.batches.remove, group)
        self.retries = GroupLabelled[Counter](p.retries.labels, p.retries.remove, group)
        self.dead_lettered = GroupLabelled[Counter](p.dead_lettered.labels, p.dead_lettered.remove,
                                                    group)
        self.lag = GroupLabelled[Gauge](p.lag.labels, p.lag.remove, group)
        self.committed = GroupLabelled[Gauge](p.committed.labels, p.committed.remove, group)
        self.unavailable = GroupLabelled[Gauge](p.unavailable.labels, p.unavailable.remove, group)
        self._singles = [GroupLabelled[Gauge](g.labels, g.remove, group)
                         for g in (p.in_flight_records, p.in_flight_bytes, p.paused)]
        # routes whose destination is unavailable (the settler's); /readyz of the process
        # reports them while this group is running
        self.unavailable_routes: set[str] = set()
        self.in_flight_records = self._singles[0].labels()
        self.in_flight_bytes = self._singles[1].labels()
        self.paused = self._singles[2].labels()

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop a partition's lag and committed-offset series (it was revoked or lost)."""
        self.lag.remove(topic, str(partition))
        self.committed.remove(topic, str(partition))

    def clear(self) -> None:
        """Drop every series this bridge set."""
        self.latency.clear()
        for family in (self.received, self.delivered, self.batches, self.retries,
                       self.dead_lettered):
            family.clear()
        for gauge in (self.lag, self.committed, self.unavailable, *self._singles):
            gauge.clear()

    # -- the process's health state ----------------------------------------------------------

    @property
    def registry(self) -> CollectorRegistry:
        return self.process.registry

    @property
    def ready(self) -> bool:
        return self.process.ready

    @ready.setter
    def ready(self, value: bool) -> None:
        self.process.ready = value

    @property
    def heartbeat(self) -> float:
        return self.process.heartbeat

    @heartbeat.setter
    def heartbeat(self, value: float) -> None:
        self.process.heartbeat = value

    @property
    def progress(self) -> float:
        return self.process.progress

    @progress.setter
    def progress(self, value: float) -> None:
        self.process.progress = value

    @property
    def in_flight(self) -> int:
        return self.process.in_flight

    @in_flight.setter
    def in_flight(self, value: int) -> None:
        self.process.in_flight = value

    @property
    def kafka_down_since(self) -> float | None:
        return self.process.kafka_down_since

    @kafka_down_since.setter
    def kafka_down_since(self, value: float | None) -> None:
        self.process.kafka_down_since = value

    @property
    def stall_after(self) -> float:
        return self.process.stall_after

    def not_ready(self, now: float) -> str | None:
        return self.process.not_ready(now)

    def render(self) -> bytes:
        return self.process.render()


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
