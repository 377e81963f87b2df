"""The bridge loop: poll, decode, route, batch, deliver, settle, commit.

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

Ordered routes batch per partition and keep at most one batch (with its retries) of a partition
in flight; unordered routes batch per destination and run batches in parallel.

Rebalances: on revoke, the partition's open batches are sent, its in-flight messages drained
until ``shutdown_deadline``, its contiguous offset committed, and then the partition is
forgotten. Stop (:meth:`Bridge.stop`, wired to SIGTERM/SIGINT by :func:`install_signal_handlers`)
is two-phase: stop polling, drain in-flight within the deadline, commit, close; a second SIGINT
exits at once.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import itertools
import logging
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from connectors.dead_letter import DeadLetter, DeadLetterWriter
from connectors.http_sink import HttpSink
from connectors.kafka_source import KafkaSource
from connectors.qstash_sink import QStashSink
from connectors.sink import Message, Record
from migrator.bridge.batcher import Batch, Batcher
from migrator.bridge.checkpoint import Checkpointer, PartitionCheckpoint
from migrator.bridge.config import (
    BridgeConfig,
)
from migrator.bridge.metrics import BridgeMetrics
from migrator.bridge.retry import Backoff
from migrator.bridge.routes import DestinationRuntime, RouteRuntime, build_routes
from migrator.config import KafkaConnection
from migrator.errors import (
    DeliveryError,
    MigratorError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    ServiceError,
)
from migrator.kafka.consumer import BRIDGE_CONSUMER_DEFAULTS, KafkaConsumer

__all__ = ["Bridge", "BridgeStats", "install_signal_handlers"]

log = logging.getLogger(__name__)

Partition = tuple[str, int]
COMMIT_INTERVAL = 1.0
PAUSE_AFTER = 1.0  # seconds at the in-flight limit before partitions are paused
OUTAGE_LOG_INTERVAL = 30.0  # seconds between warnings while a destination stays unavailable
GC_YOUNG_THRESHOLD = 50_000  # see _throughput_gc


@dataclass
class BridgeStats:
    """Counters for the status line, logs and benchmarks."""

    received: int = 0
    delivered: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    retries: int = 0
    batches: int = 0
    commits: int = 0
    revoked: int = 0  # partitions handed back in rebalances
    lost: int = 0  # partitions taken away without a revoke (thrown out of the group)
    latencies: list[float] = field(default_factory=list)  # sampled, seconds
    started: float = field(default_factory=time.monotonic)


class Bridge:
    """One bridge process's worth of work. :meth:`run` blocks until stopped."""

    def __init__(
        self,
        config: BridgeConfig,
        connection: KafkaConnection,
        *,
        qstash: tuple[str, str] | None = None,
        metrics: BridgeMetrics | None = None,
        consumer_overrides: dict[str, str] | None = None,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
        schema_lookup: Callable[[int], tuple[str, str]] | None = None,
    ) -> None:
        self.config = config
        self.connection = connection
        self.metrics = metrics or BridgeMetrics()
        self.stats = BridgeStats()
        self.consumer = KafkaConsumer(connection, config.group, factory=consumer_factory,
                                      defaults={**BRIDGE_CONSUMER_DEFAULTS, **(consumer_overrides or {})})
        self._source = KafkaSource(self.consumer)
        limits = config.in_flight
        self._client = httpx.Client(
            limits=httpx.Limits(
                max_connections=limits.batches + 2, max_keepalive_connections=limits.batches + 2
            ),
            timeout=30.0,
        )
        self._routes = build_routes(config, self._client, qstash, schema_lookup)
        self._sinks = [d.sink for rt in self._routes.values() for d in rt.destinations]
        self._checkpoint = Checkpointer()
        self._batcher = Batcher(config.batch, counts=[
            config.batch.count_for(direct=isinstance(sink, HttpSink)) for sink in self._sinks
        ])
        self._read_size = min(2 * config.batch.count_for(direct=False), 1000)
        self._backoff = Backoff(config.retry)
        self._count_outages = config.retry.count_outages
        self._outage_logged = float("-inf")
        self._workers = limits.batches
        self._pool = ThreadPoolExecutor(limits.batches, thread_name_prefix="bridge-deliver")
        self._done: queue.SimpleQueue[tuple[Batch, list[DeliveryError | None]]] = (
            queue.SimpleQueue()
        )
        self._busy: set[tuple[int, Partition | None]] = set()
        self._waiting: dict[tuple[int, Partition | None], deque[Batch]] = {}
        self._retry_heap: list[tuple[float, int, Batch]] = []
        self._seq = itertools.count()
        self._in_flight = 0  # messages polled and not settled
        self._in_flight_bytes = 0
        self._outstanding = 0  # batches submitted to the pool and not settled
        self._paused: set[Partition] = set()
        # partitions held back (sought back to an undecoded record) until a monotonic time,
        # with the count of holds in a row: their schema registry is unavailable
        self._held: dict[Partition, float] = {}
        self._holds: dict[Partition, tuple[int, float]] = {}
        self._full_since: float | None = None  # when the in-flight limit was reached
        self._stalled = False  # the limit held for PAUSE_AFTER: every partition is paused
        self._assigned: set[Partition] = set()
        self._stopping = threading.Event()
        self._fatal: BaseException | None = None
        self._last_commit = time.monotonic()
        self._last_lag = 0.0
        self._dlq = (
            DeadLetterWriter(connection, config.dead_letter.topic)
            if config.dead_letter.topic
            else None
        )
        self._sample_every = 1
        self._sample_tick = 0
        self._m_received: dict[str, Any] = {}
        self._m_ok = [self.metrics.delivered.labels(s.name, "ok") for s in self._sinks]
        self._m_batch_ok = [self.metrics.batches.labels(s.name, "ok") for s in self._sinks]
        self._m_latency = [self.metrics.latency.labels(s.name) for s in self._sinks]
        self._m_unavailable = [self.metrics.unavailable.labels(s.name) for s in self._sinks]
        self._unavailable = [False] * len(self._sinks)
        for gauge in self._m_unavailable:
            gauge.set(0)

    # -- wiring ------------------------------------------------------------------------------

    # -- public ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to stop polling, drain, commit and close (safe from signal handlers)."""
        self._stopping.set()

    @property
    def in_flight(self) -> int:
        """Messages polled and not yet settled."""
        return self._in_flight

    @property
    def paused_count(self) -> int:
        return len(self._paused)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def run(self, *, on_tick: Callable[[Bridge], None] | None = None) -> BridgeStats:
        """Run until :meth:`stop` or a fatal error; returns the final counters."""
        self.consumer.subscribe(
            list(self._routes), on_assign=self._on_assign, on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
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

    def _pass(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        now = time.monotonic()
        self.metrics.heartbeat = now
        limits = self.config.in_flight
        if self._in_flight >= limits.records or self._in_flight_bytes >= limits.bytes:
            if self._full_since is None:
                self._full_since = now
        else:
            self._full_since = None
        self._backpressure(now)
        if self._full_since is not None and not self._stalled:
            # at the in-flight limit: take nothing more from librdkafka's bounded prefetch queue
            # (pausing would drop it, and a resumed partition's next fetch can take a second);
            # wait for a batch to finish instead
            self._settle_ready(wait=0.005)
        else:
            if self._outstanding >= 2 * self._workers and not self._retry_heap:
                timeout = 0.02  # the pool has queued work: wake less often, leave the GIL to it
            elif self._outstanding or self._retry_heap or len(self._batcher):
                timeout = 0.002
            else:
                timeout = 0.1
            self._ingest(self._source.read(self._read_size, timeout))
        for batch in self._batcher.due():
            self._submit(batch)
        self._settle_ready()
        self._send_due_retries()
        if self._dlq is not None:
            self._dlq.poll()
        self.metrics.in_flight_records.set(self._in_flight)
        self.metrics.in_flight_bytes.set(self._in_flight_bytes)
        now = time.monotonic()
        if now - self._last_commit >= COMMIT_INTERVAL:
            self._commit()
            if now - self._last_lag >= 5.0:
                self._update_lag()

    def _ingest(self, records: list[Record]) -> None:
        """Track, encode and batch one poll's records: the per-record hot path.

        Records arrive in runs of one partition, so the partition's ticket, route and batch
        keys are looked up once per run; counters are added up once per poll.
        """
        if not records:
            return
        now = time.monotonic()
        received: dict[str, int] = {}
        add = self._batcher.add
        last_topic, last_partition = "", -1
        part: PartitionCheckpoint | None = None
        rt: RouteRuntime | None = None
        keys: list[tuple[DestinationRuntime, tuple[int, Partition | None]]] = []
        track_only = False
        count = size = 0
        try:
            for record in records:
                topic, partition, offset = record.topic, record.partition, record.offset
                if partition != last_partition or topic != last_topic:
                    last_topic, last_partition = topic, partition
                    tp = (topic, partition)
                    part = (self._checkpoint.ticket(tp)
                            if tp in self._assigned and tp not in self._held else None)
                    rt = self._routes[topic]
                    key_part = tp if rt.route.ordered else None
                    keys = [(d, (d.index, key_part)) for d in rt.destinations]
                    track_only = rt.route.tombstone != "forward_empty"
                if part is None or rt is None:
                    continue
                if offset <= part.last_tracked:
                    log.warning('ignoring a re-delivered record partition="%s[%d]" offset=%d',
                                topic, partition, offset)
                    continue
                received[topic] = received.get(topic, 0) + 1
                if record.value is None and track_only:
                    self._tombstone(record, rt, part)
                    continue
                try:
                    body, content_type = rt.codec.encode(record)
                except DeliveryError as exc:
                    if isinstance(exc, RetryableDeliveryError) and not self._count_outages:
                        # the registry is unavailable: read this partition again from here
                        self._hold((topic, partition), offset, exc, now)
                        part = None  # the rest of this run comes again after the seek
                        continue
                    part.track(offset, 1)
                    why = DeadLetter("undecodable", str(exc), route=rt.route.route_name)
                    self._dead_letter_record(record, why, part, size=0)
                    continue
                part.track(offset, len(keys))
                tail = f"{partition}-{offset}"
                for dest, key in keys:
                    m = Message(record, body, content_type, dest.id_prefix + tail, 0, now, None, part)
                    count += 1
                    size += m.size
                    full = add(key, m)
                    if full is not None:
                        self._submit(full)
        finally:
            self._in_flight += count
            self._in_flight_bytes += size
            for topic, n in received.items():
                self.stats.received += n
                counter = self._m_received.get(topic)
                if counter is None:
                    counter = self._m_received[topic] = self.metrics.received.labels(topic)
                counter.inc(n)

    def _tombstone(self, record: Record, rt: RouteRuntime, part: PartitionCheckpoint) -> None:
        """A null value on a route whose policy is skip or dead-letter."""
        route = rt.route
        part.track(record.offset, 1)
        if route.tombstone == "skip":
            self.stats.skipped += 1
            self.metrics.delivered.labels(route.route_name, "skipped").inc()
            part.ack(record.offset)
        else:
            why = DeadLetter("tombstone", "tombstone (null value)", route=route.route_name)
            self._dead_letter_record(record, why, part, size=0)

    # -- dispatch ----------------------------------------------------------------------------

    def _submit(self, batch: Batch, *, retry: bool = False) -> None:
        key = batch.key
        if key[1] is not None and not retry:
            if key in self._busy:
                self._waiting.setdefault(key, deque()).append(batch)
                return
            self._busy.add(key)
        self._outstanding += 1
        self.stats.batches += 1
        self._pool.submit(self._deliver, batch)

    def _deliver(self, batch: Batch) -> None:
        """Worker thread: one request (or request sequence) for one batch."""
        sink = self._sinks[batch.destination]
        for m in batch.messages:
            m.attempts += 1
        try:
            results = sink.write_batch(batch.messages)
        except Exception as exc:  # a sink bug must not lose the batch
            log.exception("sink %s failed on a batch", sink.name)
            results = [RetryableDeliveryError(f"sink error: {exc}")] * len(batch.messages)
        self._done.put((batch, results))

    def _settle_ready(self, wait: float = 0.0) -> None:
        try:
            item = self._done.get(timeout=wait) if wait > 0 else self._done.get_nowait()
        except queue.Empty:
            return
        while True:
            self._settle(*item)
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                return

    def _settle(self, batch: Batch, results: Sequence[DeliveryError | None]) -> None:
        self._outstanding -= 1
        dest = batch.destination
        sink = self._sinks[dest]
        now = time.monotonic()
        if not any(results):  # all accepted: the hot path
            self._delivered(batch.messages, dest, now)
            self._m_batch_ok[dest].inc()
            if self._unavailable[dest]:
                self._unavailable[dest] = False
                self._m_unavailable[dest].set(0)
                log.warning("%s available again", sink.name)
            self._release_key(batch.key)
            return
        retry: list[Message] = []
        wait = 0.0
        outage: RetryableDeliveryError | None = None  # to log, when only outages failed
        own_failure = False  # some record failed on its own
        self._delivered([m for m, r in zip(batch.messages, results, strict=True) if r is None],
                        dest, now)
        for m, result in zip(batch.messages, results, strict=True):
            if result is None:
                continue
            record = m.record
            tp = (record.topic, record.partition)
            if result.status in (401, 403) and isinstance(sink, QStashSink):
                raise ServiceError(
                    f"QStash refused the token (HTTP {result.status}) while delivering "
                    f"{sink.name}: check qstash.token / QSTASH_TOKEN and qstash.url.",
                    status=result.status,
                )
            if not self._checkpoint.owns(tp, m.ticket):
                self._message_done(m)
                continue
            if isinstance(result, RetryableDeliveryError) and result.outage:
                outage = outage or result
                if not self._count_outages:
                    m.outages += 1
            else:
                own_failure = True
            if isinstance(result, RetryableDeliveryError) and not self._backoff.exhausted(
                m.attempts - m.outages  # outages are not the record's attempts
            ):
                retry.append(m)
                wait = max(wait, self._backoff.wait(m.attempts, result))
                continue
            reason = "rejected" if isinstance(result, PermanentDeliveryError) else "retries-exhausted"
            log.warning(
                'dead-lettering partition="%s[%d]" offset=%d route=%s: %s',
                record.topic, record.partition, record.offset, sink.name, result,
            )
            why = DeadLetter(
                reason, str(result), route=sink.name, status=result.status, attempts=m.attempts
            )
            self._dead_letter_record(record, why, m.ticket, size=m.size, counted=True)
        self.metrics.batches.labels(sink.name, "partial").inc()
        if outage is not None and not own_failure:  # the destination as a whole
            if not self._unavailable[dest]:
                self._unavailable[dest] = True
                self._m_unavailable[dest].set(1)
            if now - self._outage_logged >= OUTAGE_LOG_INTERVAL:
                self._outage_logged = now
                log.warning("%s unavailable, holding %d records in flight and retrying "
                            "(partitions pause while the in-flight limit holds): %s",
                            sink.name, self._in_flight, outage)
        if retry:
            self.stats.retries += len(retry)
            self.metrics.retries.labels(sink.name).inc(len(retry))
            rb = Batch(batch.key, retry, sum(m.size for m in retry), now, now + wait)
            heapq.heappush(self._retry_heap, (rb.not_before, next(self._seq), rb))
            return  # an ordered key stays busy until its retries settle
        self._release_key(batch.key)

    def _delivered(self, messages: list[Message], dest: int, now: float) -> None:
        """Acknowledge accepted messages; their latencies are observed per poll (one
        observation per group of messages polled together, weighted by its size)."""
        if not messages:
            return
        live = self._checkpoint.live
        observe = self._m_latency[dest].observe
        size = n = 0
        polled = messages[0].first_sent
        for m in messages:
            size += m.size
            ticket = m.ticket
            if ticket in live:  # else revoked meanwhile: nothing to commit for it
                ticket.ack(m.record.offset)
            if m.first_sent != polled:
                observe(now - polled, n)
                self._sample(now - polled, n)
                polled, n = m.first_sent, 0
            n += 1
        observe(now - polled, n)
        self._sample(now - polled, n)
        self._in_flight -= len(messages)
        self._in_flight_bytes -= size
        self.stats.delivered += len(messages)
        self._m_ok[dest].inc(len(messages))

    def _release_key(self, key: tuple[int, Partition | None]) -> None:
        if key[1] is None:
            return
        waiting = self._waiting.get(key)
        if waiting:
            self._outstanding += 1
            self.stats.batches += 1
            self._pool.submit(self._deliver, waiting.popleft())
        else:
            self._busy.discard(key)
            self._waiting.pop(key, None)

    def _send_due_retries(self) -> None:
        now = time.monotonic()
        while self._retry_heap and self._retry_heap[0][0] <= now:
            _, _, batch = heapq.heappop(self._retry_heap)
            owned = []
            for m in batch.messages:
                if self._checkpoint.owns((m.record.topic, m.record.partition), m.ticket):
                    owned.append(m)
                else:
                    self._message_done(m)
            if owned:
                batch.messages = owned
                self._submit(batch, retry=True)
            else:
                self._release_key(batch.key)

    # -- outcomes ----------------------------------------------------------------------------

    def _message_done(self, m: Message) -> None:
        self._in_flight -= 1
        self._in_flight_bytes -= m.size

    def _sample(self, latency: float, count: int) -> None:
        """Keep every ``_sample_every``-th latency (the rate halves when 200,000 are kept)."""
        before = self._sample_tick // self._sample_every
        self._sample_tick += count
        keep = self._sample_tick // self._sample_every - before
        if keep:
            samples = self.stats.latencies
            samples.extend([latency] * keep)
            if len(samples) >= 200_000:
                del samples[::2]
                self._sample_every *= 2

    def _dead_letter_record(
        self, record: Record, why: DeadLetter, ticket: object, *, size: int, counted: bool = False
    ) -> None:
        tp = (record.topic, record.partition)
        if not counted:
            self._in_flight += 1
            self._in_flight_bytes += size
        if self._dlq is None:
            raise DeliveryError(
                f'partition="{record.topic}[{record.partition}]" offset={record.offset} route '
                f"{why.route}: {why.error}. No dead_letter.topic is configured, so the bridge "
                "stops here rather than skip it; set dead_letter.topic to keep the stream going."
            )

        def done(error: str | None) -> None:
            self._in_flight -= 1
            self._in_flight_bytes -= size
            if error is not None:
                self._fatal = DeliveryError(
                    f"dead-letter write to {self.config.dead_letter.topic} failed: {error}"
                )
                return
            self.stats.dead_lettered += 1
            self.metrics.dead_lettered.labels(why.route, why.reason).inc()
            self.metrics.delivered.labels(why.route, "dead_lettered").inc()
            self._checkpoint.ack(tp, record.offset, ticket)

        self._dlq.send(record, why, done)

    # -- backpressure, offsets, rebalances ----------------------------------------------------

    def _hold(self, tp: Partition, offset: int, error: RetryableDeliveryError, now: float) -> None:
        """Read ``tp`` again from ``offset`` after a backoff, instead of dead-letter a record
        that could not be decoded for a reason that is not its own (registry unavailable)."""
        count, last = self._holds.get(tp, (0, float("-inf")))
        count = count + 1 if now - last < 2 * self.config.retry.max_backoff else 1
        wait = self._backoff.wait(count)
        self._holds[tp] = (count, now)
        self._held[tp] = now + wait
        self.consumer.pause([tp])
        self._paused.add(tp)
        self.consumer.seek(tp, offset)
        if now - self._outage_logged >= OUTAGE_LOG_INTERVAL:
            self._outage_logged = now
            log.warning('holding partition="%s[%d]" at offset %d for %.1fs: %s', tp[0], tp[1],
                        offset, wait, error)

    def _backpressure(self, now: float) -> None:
        """Pause partitions when the in-flight limit held for ``PAUSE_AFTER`` seconds (the
        destination is slow or down: the loop keeps polling, so group membership and rebalance
        callbacks stay served, but takes nothing), until half the limit is free again; and
        pause an ordered partition whose batches queue up behind its one in-flight batch."""
        limits = self.config.in_flight
        if self._full_since is not None and now - self._full_since >= PAUSE_AFTER:
            self._stalled = True
        elif self._stalled and (
            self._in_flight <= limits.records // 2 and self._in_flight_bytes <= limits.bytes // 2
        ):
            self._stalled = False
        want: set[Partition] = set(self._assigned) if self._stalled else set()
        if self._held:
            for tp in [tp for tp, until in self._held.items() if until <= now]:
                del self._held[tp]
            want.update(self._held)
        for key, waiting in self._waiting.items():
            if key[1] is not None and len(waiting) >= 4:
                want.add(key[1])
        want &= self._assigned
        if want != self._paused:
            self.consumer.pause(want - self._paused)
            self.consumer.resume(self._paused - want)
            self._paused = want
            self.metrics.paused.set(len(self._paused))

    def _commit(self, partitions: set[Partition] | None = None) -> None:
        self._last_commit = time.monotonic()
        offsets = self._checkpoint.committable(partitions)
        if not offsets:
            return
        if not self.consumer.commit(offsets):
            return  # membership moved on: the rebalance callbacks tell what is still ours
        self._checkpoint.committed(offsets)
        self.stats.commits += 1
        for (topic, partition), offset in offsets.items():
            self.metrics.committed.labels(topic, str(partition)).set(offset)

    def _update_lag(self) -> None:
        self._last_lag = time.monotonic()
        for tp, (committed, _pending) in self._checkpoint.snapshot().items():
            if committed is None:
                continue
            try:
                _low, high = self.consumer.watermarks(tp, cached=True)
            except MigratorError:
                continue
            if high >= 0:
                self.metrics.lag.labels(tp[0], str(tp[1])).set(max(0, high - committed))

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        tps = [(tp.topic, tp.partition) for tp in partitions]
        starts = self._start_offsets(tps)
        for tp in partitions:
            start = starts.get((tp.topic, tp.partition))
            if start is not None:
                tp.offset = start
        self.consumer.assign(partitions)
        # librdkafka keeps a partition's pause flag across revoke/assign: start unpaused.
        self.consumer.resume(tps)
        for tp_key in tps:
            self._checkpoint.assign(tp_key)
            self._assigned.add(tp_key)
        self.metrics.ready = True
        log.info("assigned %s", ", ".join(f"{t}[{p}]" for t, p in tps) or "nothing")

    def _start_offsets(self, tps: list[Partition]) -> dict[Partition, int]:
        """Start offsets for partitions this group has no committed offset for."""
        if not tps:
            return {}
        committed = self.consumer.committed(tps)
        fresh = [tp for tp in tps if tp not in committed]
        if not fresh:
            return {}
        cfg = self.config
        if cfg.start == "start_from_group" and cfg.start_from_group:
            old = KafkaConsumer(self.connection, cfg.start_from_group)
            try:
                found = old.committed(fresh)
            finally:
                old.close()
            log.info("starting from group %s at %s", cfg.start_from_group, found)
            return {tp: found.get(tp, OFFSET_BEGINNING) for tp in fresh}
        if cfg.start == "timestamp" and cfg.start_timestamp is not None:
            ms = int(cfg.start_timestamp.timestamp() * 1000)
            found = self.consumer.offsets_for_time(fresh, ms)
            return {tp: (found.get(tp, -1) if found.get(tp, -1) >= 0 else OFFSET_END) for tp in fresh}
        position = OFFSET_END if cfg.start == "latest" else OFFSET_BEGINNING
        return dict.fromkeys(fresh, position)

    def _on_revoke(self, partitions: list[TopicPartition]) -> None:
        tps = {(tp.topic, tp.partition) for tp in partitions}
        self.stats.revoked += len(tps & self._assigned)
        if not self._stopping.is_set():
            for batch in [b for tp in tps for b in self._batcher.flush(tp)]:
                self._submit(batch)
            self._drain(lambda: any(self._checkpoint.pending(tp) for tp in tps))
        try:
            self._commit(tps)
        finally:
            self._forget(tps)
            log.info("revoked %s", ", ".join(f"{t}[{p}]" for t, p in sorted(tps)))

    def _on_lost(self, partitions: list[TopicPartition]) -> None:
        """Partitions taken away without a revoke: another member may own them already, so
        nothing is drained or committed for them. Their in-flight messages settle as not owned;
        the new owner re-reads from the last commit (through QStash the dedup ids absorb the
        replay; direct endpoints see it again, at least once)."""
        tps = {(tp.topic, tp.partition) for tp in partitions}
        self.stats.lost += len(tps & self._assigned)
        self._forget(tps)
        log.warning("lost %s (thrown out of the group: was the loop stalled past "
                    "max.poll.interval.ms?); rejoining",
                    ", ".join(f"{t}[{p}]" for t, p in sorted(tps)))

    def _forget(self, tps: set[Partition]) -> None:
        """Drop every trace of ``tps``: waiting and open batches, tickets, pause state."""
        for key in [k for k in self._waiting if k[1] in tps]:
            for batch in self._waiting.pop(key):
                for m in batch.messages:
                    self._message_done(m)
        for tp in tps:
            self._checkpoint.revoke(tp)
            self._assigned.discard(tp)
            self._paused.discard(tp)
            self._held.pop(tp, None)
            self._holds.pop(tp, None)
            for m in self._batcher.drop(tp):
                self._message_done(m)

    def _drain(self, pending: Callable[[], bool]) -> bool:
        """Settle, retry and dead-letter until ``pending()`` is false or the deadline passes."""
        deadline = time.monotonic() + self.config.shutdown_deadline
        while pending():
            if time.monotonic() >= deadline:
                log.warning("drain deadline of %ss reached", self.config.shutdown_deadline)
                return False
            for batch in self._batcher.due():
                self._submit(batch)
            self._settle_ready(wait=0.01)
            self._send_due_retries()
            if self._dlq is not None:
                self._dlq.poll()
            if self._fatal is not None:
                raise self._fatal
        return True

    # -- stopping ----------------------------------------------------------------------------

    def _shutdown(self) -> None:
        log.info("stopping: draining %d in-flight messages", self._in_flight)
        self.metrics.ready = False
        for batch in self._batcher.flush():
            self._submit(batch)
        self._drain(lambda: self._in_flight > 0)
        self._commit()
        self._close()

    def _abort(self) -> None:
        """Fatal path: commit what is safely delivered, then close."""
        try:
            self._commit()
        except Exception:
            log.warning("final commit failed", exc_info=True)
        try:
            self._close()
        except Exception:
            log.warning("closing failed", exc_info=True)

    def _close(self) -> None:
        self.consumer.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._dlq is not None:
            self._dlq.flush(5.0)
        self._client.close()


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


def install_signal_handlers(bridge: Bridge) -> None:
    """SIGTERM/SIGINT: graceful stop; a second SIGINT exits at once (status 130)."""

    def graceful(signum: int, _frame: FrameType | None) -> None:
        if bridge.stopping and signum == signal.SIGINT:
            os._exit(130)
        log.info("stop requested (%s): draining and committing (send SIGINT again to exit at once)",
                 signal.Signals(signum).name)
        bridge.stop()

    signal.signal(signal.SIGTERM, graceful)
    signal.signal(signal.SIGINT, graceful)
