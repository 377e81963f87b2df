"""Which partitions the bridge owns: rebalances, start offsets, commits and lag.

* assigned (:meth:`Assignment.on_assign`): a partition without a committed offset for the
  group starts where ``start`` says (:func:`start_offsets`); it starts unpaused, with a fresh
  checkpoint;
* revoked (:meth:`Assignment.on_revoke`): its open batches are sent, its in-flight messages
  drained until ``shutdown_deadline``, its contiguous offset committed, then it is forgotten;
* lost (:meth:`Assignment.on_lost`, thrown out of the group): forgotten at once, nothing
  committed (another member may own it already); not ready until the member has rejoined;
* :meth:`Assignment.commit` commits the contiguous delivered offsets (on revoke and at the
  end); the loop commits them about once a second without waiting
  (:meth:`Assignment.commit_in_background`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from connectors.sink import Message
from migrator.bridge.batcher import Batcher
from migrator.bridge.checkpoint import Checkpointer
from migrator.bridge.config import BridgeConfig
from migrator.bridge.dispatch import Dispatcher
from migrator.bridge.flow import Backpressure, InFlight
from migrator.bridge.metrics import GroupMetrics
from migrator.bridge.stats import BridgeStats
from migrator.config import KafkaConnection
from migrator.errors import MigratorError
from migrator.kafka.consumer import OFFSET_BEGINNING, OFFSET_END, KafkaConsumer

__all__ = ["LAG_INTERVAL", "Assignment", "start_offsets"]

log = logging.getLogger(__name__)

Partition = tuple[str, int]
LAG_INTERVAL = 5.0  # seconds between consumer-lag gauge updates


def start_offsets(
    config: BridgeConfig,
    consumer: KafkaConsumer,
    connection: KafkaConnection,
    tps: list[Partition],
) -> dict[Partition, int]:
    """Start offsets for partitions this group has no committed offset for: ``start`` decides
    (earliest, latest, the first offset at ``start_timestamp``, or ``start_from_group``'s
    committed offset, earliest where it has none). ``migrator bridge check`` follows the same
    rules through the admin API (:mod:`migrator.bridge.preflight`)."""
    if not tps:
        return {}
    committed = consumer.committed(tps)
    fresh = [tp for tp in tps if tp not in committed]
    if not fresh:
        return {}
    if config.start == "start_from_group" and config.start_from_group:
        old = KafkaConsumer(connection, config.start_from_group)
        try:
            found = old.committed(fresh)
        finally:
            old.close()
        log.info("starting from group %s at %s", config.start_from_group, found)
        return {tp: found.get(tp, OFFSET_BEGINNING) for tp in fresh}
    if config.start == "timestamp" and config.start_timestamp is not None:
        ms = int(config.start_timestamp.timestamp() * 1000)
        found = consumer.offsets_for_time(fresh, ms)
        return {tp: (found.get(tp, -1) if found.get(tp, -1) >= 0 else OFFSET_END) for tp in fresh}
    position = OFFSET_END if config.start == "latest" else OFFSET_BEGINNING
    return dict.fromkeys(fresh, position)


def _names(tps: Iterable[Partition]) -> str:
    return ", ".join(f"{t}[{p}]" for t, p in tps)


class Assignment:
    """The partitions this member owns, and what happens when they change hands."""

    def __init__(
        self,
        config: BridgeConfig,
        connection: KafkaConnection,
        consumer: KafkaConsumer,
        checkpoint: Checkpointer,
        batcher: Batcher,
        dispatch: Dispatcher,
        backpressure: Backpressure,
        flow: InFlight,
        *,
        drain: Callable[[Callable[[], bool]], bool],
        stopping: threading.Event,
        metrics: GroupMetrics,
        stats: BridgeStats,
    ) -> None:
        self._config = config
        self._connection = connection
        self._consumer = consumer
        self._checkpoint = checkpoint
        self._batcher = batcher
        self._dispatch = dispatch
        self._backpressure = backpressure
        self._flow = flow
        self._drain = drain
        self._stopping = stopping
        self._metrics = metrics
        self._stats = stats
        self.assigned: set[Partition] = set()
        self.last_commit = time.monotonic()
        self._last_lag = 0.0

    # -- rebalance callbacks (run inside consume) --------------------------------------------

    def on_assign(self, tps: list[Partition]) -> None:
        starts = start_offsets(self._config, self._consumer, self._connection, tps)
        self._consumer.assign(tps, starts)
        # librdkafka keeps a partition's pause flag across revoke/assign: start unpaused.
        self._consumer.resume(tps)
        for tp in tps:
            self._checkpoint.assign(tp)
            self.assigned.add(tp)
        self._metrics.ready = True
        log.info("assigned %s", _names(tps) or "nothing")

    def on_revoke(self, partitions: list[Partition]) -> None:
        tps = set(partitions)
        self._stats.revoked += len(tps & self.assigned)
        if not self._stopping.is_set():
            for batch in [b for tp in tps for b in self._batcher.flush(tp)]:
                self._dispatch.submit(batch)
            self._drain(lambda: any(self._checkpoint.pending(tp) for tp in tps))
        try:
            self.commit(tps)
        finally:
            self.forget(tps)
            log.info("revoked %s", _names(sorted(tps)))

    def on_lost(self, partitions: list[Partition]) -> None:
        """Partitions taken away without a revoke: another member may own them already, so
        nothing is drained or committed for them. Their in-flight messages settle as not owned;
        the new owner re-reads from the last commit (through QStash the dedup ids absorb the
        replay; direct endpoints see it again, at least once)."""
        tps = set(partitions)
        self._stats.lost += len(tps & self.assigned)
        self.forget(tps)
        # out of the group until it has rejoined: /readyz says so until the next on_assign
        # (librdkafka calls it after every join, with no partitions too)
        self._metrics.ready = False
        log.warning("lost %s (thrown out of the group: was the loop stalled past "
                    "max.poll.interval.ms?); rejoining", _names(sorted(tps)))

    def forget(self, tps: set[Partition]) -> None:
        """Drop every trace of ``tps``: waiting and open batches, tickets, pause state."""
        done = self._message_done
        self._dispatch.drop(tps, done)
        for tp in tps:
            self._checkpoint.revoke(tp)
            self.assigned.discard(tp)
            self._backpressure.forget(tp)
            self._metrics.forget_partition(*tp)  # another member reports its lag now
            for m in self._batcher.drop(tp):
                done(m)

    def _message_done(self, m: Message) -> None:
        self._flow.done(m.size)

    # -- offsets -----------------------------------------------------------------------------

    def commit(self, partitions: set[Partition] | None = None) -> None:
        """Commit the contiguous delivered offsets (of ``partitions``, else of all)."""
        self.last_commit = time.monotonic()
        offsets = self._checkpoint.committable(partitions)
        if not offsets:
            return
        if not self._consumer.commit(offsets):
            return  # membership moved on: the rebalance callbacks tell what is still ours
        self._committed(offsets)

    def commit_in_background(self) -> None:
        """The loop's periodic commit of the contiguous delivered offsets: asynchronous, so a
        commit the group coordinator never answers cannot stall the loop (see
        :meth:`KafkaConsumer.commit_async`); noted as committed when the group confirms it."""
        self.last_commit = time.monotonic()
        offsets = self._checkpoint.committable()
        if offsets:
            self._consumer.commit_async(offsets, lambda ok: self._committed(offsets) if ok else None)

    def _committed(self, offsets: dict[Partition, int]) -> None:
        self._checkpoint.committed(offsets)
        self._stats.commits += 1
        for (topic, partition), offset in offsets.items():
            if (topic, partition) in self.assigned:  # a late async confirmation adds no stale series
                self._metrics.committed.labels(topic, str(partition)).set(offset)

    def update_lag(self, now: float) -> None:
        """Set the lag gauges (every ``LAG_INTERVAL`` s; from cached watermarks)."""
        if now - self._last_lag < LAG_INTERVAL:
            return
        self._last_lag = time.monotonic()
        for tp, (committed, _pending) in self._checkpoint.snapshot().items():
            if committed is None:
                continue
            try:
                _low, high = self._consumer.watermarks(tp, cached=True)
            except MigratorError:
                continue
            if high >= 0:
                self._metrics.lag.labels(tp[0], str(tp[1])).set(max(0, high - committed))
