"""Intake: one poll's records tracked, encoded, routed and batched (the per-record hot path).

Each record of an owned, not held partition is tracked in the partition's checkpoint with one
outcome per destination, encoded once by its route's codec, and added to the batcher as one
:class:`~connectors.sink.Message` per destination (a full batch goes to the dispatcher at once).
Tombstones follow the route's ``tombstone`` policy; an undecodable record is dead-lettered,
unless the Schema Registry is unavailable (then the partition is held and read again from that
record, see :meth:`migrator.bridge.flow.Backpressure.hold`). A record at or below the last
tracked offset (re-delivered by the consumer) is ignored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from connectors.dead_letter import DeadLetter
from connectors.sink import Message, Record
from migrator.bridge.batcher import Batcher
from migrator.bridge.checkpoint import Checkpointer, PartitionCheckpoint
from migrator.bridge.dispatch import Dispatcher, Key
from migrator.bridge.flow import Backpressure, InFlight
from migrator.bridge.metrics import GroupMetrics
from migrator.bridge.routes import DestinationRuntime, RouteRuntime
from migrator.bridge.settle import DeadLetters
from migrator.bridge.stats import BridgeStats
from migrator.errors import DeliveryError, RetryableDeliveryError

__all__ = ["Intake"]

log = logging.getLogger(__name__)

Partition = tuple[str, int]


class Intake:
    """Takes polled records into the bridge. The loop's only."""

    def __init__(
        self,
        routes: Mapping[str, RouteRuntime],
        checkpoint: Checkpointer,
        batcher: Batcher,
        dispatch: Dispatcher,
        flow: InFlight,
        backpressure: Backpressure,
        dead: DeadLetters,
        assigned: set[Partition],
        *,
        count_outages: bool,
        metrics: GroupMetrics,
        stats: BridgeStats,
    ) -> None:
        self._routes = routes
        self._checkpoint = checkpoint
        self._batcher = batcher
        self._dispatch = dispatch
        self._flow = flow
        self._backpressure = backpressure
        self._dead = dead
        self._assigned = assigned
        self._count_outages = count_outages
        self._metrics = metrics
        self._stats = stats
        self._m_received: dict[str, Any] = {}

    def ingest(self, records: list[Record]) -> None:
        """Track, encode and batch one poll's records.

        Records arrive in runs of one partition, so the partition's ticket, route and batch
        keys are looked up once per run; counters are added up once per poll.
        """
        if not records:
            return
        now = time.monotonic()
        received: dict[str, int] = {}
        add = self._batcher.add
        submit = self._dispatch.submit
        held = self._backpressure.held
        last_topic, last_partition = "", -1
        part: PartitionCheckpoint | None = None
        rt: RouteRuntime | None = None
        keys: list[tuple[DestinationRuntime, Key]] = []
        track_only = False
        count = size = 0
        try:
            for record in records:
                topic, partition, offset = record.topic, record.partition, record.offset
                if partition != last_partition or topic != last_topic:
                    last_topic, last_partition = topic, partition
                    tp = (topic, partition)
                    part = (self._checkpoint.ticket(tp)
                            if tp in self._assigned and tp not in held else None)
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
                        self._backpressure.hold((topic, partition), offset, exc, now)
                        part = None  # the rest of this run comes again after the seek
                        continue
                    part.track(offset, 1)
                    why = DeadLetter("undecodable", str(exc), route=rt.route.route_name)
                    self._dead.send(record, why, part, size=0)
                    continue
                part.track(offset, len(keys))
                tail = f"{partition}-{offset}"
                for dest, key in keys:
                    m = Message(record, body, content_type, dest.id_prefix + tail, 0, now, None, part)
                    count += 1
                    size += m.size
                    full = add(key, m)
                    if full is not None:
                        submit(full)
        finally:
            self._flow.records += count
            self._flow.bytes += size
            self._count_received(received)

    def _count_received(self, received: dict[str, int]) -> None:
        for topic, n in received.items():
            self._stats.received += n
            counter = self._m_received.get(topic)
            if counter is None:
                counter = self._m_received[topic] = self._metrics.received.labels(topic)
            counter.inc(n)

    def _tombstone(self, record: Record, rt: RouteRuntime, part: PartitionCheckpoint) -> None:
        """A null value on a route whose policy is skip or dead-letter."""
        route = rt.route
        part.track(record.offset, 1)
        if route.tombstone == "skip":
            self._stats.skipped += 1
            self._metrics.delivered.labels(route.route_name, "skipped").inc()
            part.ack(record.offset)
        else:
            why = DeadLetter("tombstone", "tombstone (null value)", route=route.route_name)
            self._dead.send(record, why, part, size=0)
