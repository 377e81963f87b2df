"""The bridge loop: poll, decode, route, batch, deliver, settle, commit.

:class:`Bridge` composes the pieces and runs the loop; each piece is a module of its own:

    intake       a poll's records tracked, encoded and batched (the per-record hot path)
    dispatch     batches to the delivery pool; one at a time per ordered partition; retries
    settle       finished batches become acks, retries and dead letters
    flow         in-flight accounting; pausing partitions (backpressure, registry holds)
    assignment   rebalances, start offsets, commits, lag
    stats        counters and sampled latencies

Concurrency model: one loop thread owns the consumer, the batcher and the checkpointer; a
bounded thread pool (``in_flight.batches`` workers, one shared keep-alive ``httpx.Client``)
performs deliveries and reports each finished batch on a queue the loop drains. Nothing but
``Sink.write_batch`` runs in the workers.

Per pass the loop (1) pauses or resumes partitions for backpressure, (2) consumes up to a
batch worth of records, unless the in-flight limit is reached (then it waits for a finished
batch instead), (3) decodes each record and adds one message per destination to the batcher,
tracking the record in the checkpointer, (4) sends full or lingered batches, (5) settles
finished batches (ack, schedule retries, dead-letter), (6) sends retries that are due, (7)
commits the contiguous delivered offsets about once a second.

Stop (:meth:`Bridge.stop`, wired to SIGTERM/SIGINT by :class:`migrator.bridge.stop_signals.StopSignals`) is
two-phase: stop polling, drain in-flight within the deadline, commit, close; a second SIGINT
exits at once.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from connectors.dead_letter import DeadLetterWriter
from connectors.kafka_source import KafkaSource
from migrator.bridge.assignment import Assignment
from migrator.bridge.batcher import Batcher
from migrator.bridge.checkpoint import Checkpointer
from migrator.bridge.config import BridgeConfig
from migrator.bridge.dispatch import Dispatcher
from migrator.bridge.flow import PAUSE_AFTER, Backpressure, InFlight, Throttle
from migrator.bridge.intake import Intake
from migrator.bridge.metrics import BridgeMetrics
from migrator.bridge.ordering import log_order_risks
from migrator.bridge.retry import Backoff
from migrator.bridge.routes import build_routes
from migrator.bridge.settle import DeadLetters, Settler
from migrator.bridge.stats import BridgeStats
from migrator.config import KafkaConnection, QStashConnection
from migrator.kafka.consumer import KafkaConsumer
from migrator.kafka.consumer_config import BRIDGE_CONSUMER_DEFAULTS

__all__ = ["PAUSE_AFTER", "Bridge", "BridgeStats"]

log = logging.getLogger(__name__)

COMMIT_INTERVAL = 1.0
OUTAGE_LOG_INTERVAL = 30.0  # seconds between warnings while a destination stays unavailable
GC_YOUNG_THRESHOLD = 50_000  # see _throughput_gc
# seconds a closing bridge waits for the requests under way before it closes their clients
CLOSE_WAIT_S = 5.0


class Bridge:
    """One bridge process's worth of work. :meth:`run` blocks until stopped."""

    def __init__(
        self,
        config: BridgeConfig,
        connection: KafkaConnection,
        *,
        qstash: QStashConnection | None = None,
        metrics: BridgeMetrics | None = None,
        consumer_overrides: dict[str, str] | None = None,
        consumer_factory: Callable[[dict[str, Any]], Any] | None = None,
        schema_lookup: Callable[[int], tuple[str, str]] | None = None,
    ) -> None:
        self.config = config
        self.connection = connection
        # the process's metrics (one registry for every bridge it runs), as this group sets them
        self.metrics = view = (metrics or BridgeMetrics()).for_group(config.group)
        self.stats = stats = BridgeStats()
        self.consumer = KafkaConsumer(
            connection, config.group,
            defaults={**BRIDGE_CONSUMER_DEFAULTS, **(consumer_overrides or {})},
            **({"factory": consumer_factory} if consumer_factory is not None else {}),
        )
        self._source = KafkaSource(self.consumer)
        limits = config.in_flight
        self._client = httpx.Client(
            limits=httpx.Limits(
                max_connections=limits.batches + 2, max_keepalive_connections=limits.batches + 2
            ),
            timeout=30.0,
        )
        self._routes = build_routes(config, self._client, qstash, schema_lookup)
        dests = [d for rt in self._routes.values() for d in rt.destinations]
        sinks = [d.sink for d in dests]
        self._read_size = min(2 * config.batch.count_for(direct=False), 1000)
        self._stopping = threading.Event()
        backoff = Backoff(config.retry)
        outages = Throttle(OUTAGE_LOG_INTERVAL)  # shared: registry holds and destinations
        checkpoint = Checkpointer()
        self._flow = flow = InFlight()
        self._batcher = Batcher(config.batch, counts=[d.batch_count for d in dests])
        self._dispatch = Dispatcher(sinks, limits.batches, stats)
        self._backpressure = Backpressure(self.consumer, limits, flow, backoff, metrics=view,
                                          throttle=outages)
        writer = (DeadLetterWriter(connection, config.dead_letter.topic)
                  if config.dead_letter.topic else None)
        self._dead = DeadLetters(writer, checkpoint, flow, metrics=view, stats=stats)
        self._settler = Settler(sinks, checkpoint, self._dispatch, flow, self._dead, backoff,
                                metrics=view, stats=stats, throttle=outages)
        self._assignment = Assignment(
            config, connection, self.consumer, checkpoint, self._batcher, self._dispatch,
            self._backpressure, flow, drain=self._drain, stopping=self._stopping,
            metrics=view, stats=stats,
        )
        self._intake = Intake(
            self._routes, checkpoint, self._batcher, self._dispatch, flow, self._backpressure,
            self._dead, self._assignment.assigned, count_outages=config.retry.count_outages,
            metrics=view, stats=stats,
        )
        self._checkpoint = checkpoint

    # -- public ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to stop polling, drain, commit and close (safe from signal handlers)."""
        self._stopping.set()

    @property
    def in_flight(self) -> int:
        """Messages polled and not yet settled."""
        return self._flow.records

    @property
    def paused_count(self) -> int:
        return len(self._backpressure.paused)

    @property
    def assigned(self) -> frozenset[tuple[str, int]]:
        """The partitions this member owns now."""
        return frozenset(self._assignment.assigned)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self, *, on_tick: Callable[[Bridge], None] | None = None) -> BridgeStats:
        """Run until :meth:`stop` or a fatal error; returns the final counters."""
        log_order_risks(self.config, log)
        self._start()
        with _throughput_gc():
            try:
                while not self._stopping.is_set():
                    self._pass()
                    if on_tick is not None:
                        on_tick(self)
                self._shutdown()
            except BaseException:
                self._stopping.set()
                self._abort()
                raise
        return self.stats

    # -- the loop ----------------------------------------------------------------------------

    def _start(self) -> None:
        """Start-up: checks that must pass (or warn) before the first poll go here, then the
        subscription with the rebalance callbacks."""
        a = self._assignment
        self.consumer.subscribe(
            list(self._routes), on_assign=a.on_assign, on_revoke=a.on_revoke, on_lost=a.on_lost
        )

    def _pass(self) -> None:
        if self._dead.fatal is not None:
            raise self._dead.fatal
        now = time.monotonic()
        self.metrics.heartbeat = now
        bp = self._backpressure
        full = bp.at_limit(now)
        bp.update(now, self._assignment.assigned, self._dispatch.crowded())
        dispatch = self._dispatch
        if full and not bp.stalled:
            # at the in-flight limit: take nothing more from librdkafka's bounded prefetch queue
            # (pausing would drop it, and a resumed partition's next fetch can take a second);
            # wait for a batch to finish instead
            self._settler.settle_ready(wait=0.005)
        else:
            if dispatch.outstanding >= 2 * dispatch.workers and not dispatch.retrying:
                timeout = 0.02  # the pool has queued work: wake less often, leave the GIL to it
            elif dispatch.outstanding or dispatch.retrying or len(self._batcher):
                timeout = 0.002
            else:
                timeout = 0.1
            self._intake.ingest(self._source.read(self._read_size, timeout))
        for batch in self._batcher.due():
            dispatch.submit(batch)
        self._settler.settle_ready()
        self._settler.resend_due(time.monotonic())
        self._dead.poll()
        self.metrics.in_flight_records.set(self._flow.records)
        self.metrics.in_flight_bytes.set(self._flow.bytes)
        now = time.monotonic()
        self.metrics.in_flight = self._flow.records
        if not self._flow.records:
            self.metrics.progress = now  # nothing waiting: the stall clock starts over
        up = self.consumer.brokers_up  # (librdkafka's statistics, served by the read above)
        if up is False and self.metrics.kafka_down_since is None:
            self.metrics.kafka_down_since = now
        elif up:
            self.metrics.kafka_down_since = None
        if now - self._assignment.last_commit >= COMMIT_INTERVAL:
            self._assignment.commit_in_background()
            self._assignment.update_lag(now)

    def _drain(self, pending: Callable[[], bool]) -> bool:
        """Settle, retry and dead-letter until ``pending()`` is false or the deadline passes."""
        deadline = time.monotonic() + self.config.shutdown_deadline
        while pending():
            if time.monotonic() >= deadline:
                log.warning("drain deadline of %ss reached", self.config.shutdown_deadline)
                return False
            for batch in self._batcher.due():
                self._dispatch.submit(batch)
            self._settler.settle_ready(wait=0.01)
            self._settler.resend_due(time.monotonic())
            self._dead.poll()
            if self._dead.fatal is not None:
                raise self._dead.fatal
        return True

    # -- stopping ----------------------------------------------------------------------------

    def _shutdown(self) -> None:
        log.info("stopping: draining %d in-flight messages", self._flow.records)
        self.metrics.ready = False
        for batch in self._batcher.flush():
            self._dispatch.submit(batch)
        self._drain(lambda: self._flow.records > 0)
        self._assignment.commit()
        self._close()

    def _abort(self) -> None:
        """Fatal path: commit what is safely delivered, then close."""
        try:
            self._assignment.commit()
        except Exception:
            log.warning("final commit failed", exc_info=True)
        try:
            self._close()
        except Exception:
            log.warning("closing failed", exc_info=True)

    def _close(self) -> None:
        self.consumer.close()
        if not self._dispatch.shutdown(wait=CLOSE_WAIT_S):
            log.warning("closing with deliveries still under way after %gs (not committed: "
                        "they are delivered again on restart)", CLOSE_WAIT_S)
        self._dead.flush(5.0)
        self._client.close()
        for route in self._routes.values():
            if route.lookup is not None:
                route.lookup.close()


@contextlib.contextmanager
def _throughput_gc() -> Iterator[None]:
    """Collect garbage less often while the bridge runs.

    Every record makes a few container objects (record, message, header dict) that live until
    delivered, and CPython's default collector runs a young-generation pass every 700 new
    containers, walking the thousands in flight again and again: measured, that was about half
    the cost of turning a Kafka message into a record. The bridge makes no reference cycles on
    its hot path, so it raises the young threshold for the duration of :meth:`Bridge.run` and
    freezes the objects that existed before (imports, config), then restores both.
    """
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
