"""Settling: a finished batch's results become acks, retries and dead letters.

For each message of a batch (:meth:`Settler.settle`):

* accepted: its ticket (the partition's checkpoint) is acked; the latency from poll to
  acceptance is observed, once per group of messages polled together;
* its partition was revoked meanwhile (the ticket is not the current assignment's): dropped,
  the new owner reads it again;
* a :class:`~connectors.statuses.CredentialsRefusedError`: the bridge stops (a
  :class:`~migrator.errors.ServiceError`), since no record can get through;
* retryable and attempts left: retried after the backoff (the longest any message of the batch
  asks for). A failure of the whole destination (``outage``) does not use up an attempt unless
  ``retry.count_outages``;
* otherwise: dead-lettered (``rejected`` for a permanent error, ``retries-exhausted``), and
  acked once the dead letter is written.

An ordered key stays busy until its retries settle, so a partition's order holds through them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from connectors.dead_letter import DeadLetter, DeadLetterWriter
from connectors.sink import Message, Record, Sink, Ticket
from connectors.statuses import CredentialsRefusedError
from migrator.bridge.batcher import Batch
from migrator.bridge.checkpoint import Checkpointer
from migrator.bridge.dispatch import Dispatcher
from migrator.bridge.flow import InFlight, Throttle
from migrator.bridge.metrics import GroupMetrics
from migrator.bridge.retry import Backoff
from migrator.bridge.stats import BridgeStats, LatencySampler
from migrator.errors import (
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
    ServiceError,
)

__all__ = ["DeadLetters", "Settler"]

log = logging.getLogger(__name__)


class DeadLetters:
    """Dead-letters records and acks them once the broker has the dead letter; a failed write
    is fatal (:attr:`fatal`, raised by the loop), and so is a dead letter with no topic set."""

    def __init__(
        self,
        writer: DeadLetterWriter | None,
        checkpoint: Checkpointer,
        flow: InFlight,
        *,
        metrics: GroupMetrics,
        stats: BridgeStats,
    ) -> None:
        self._writer = writer
        self._checkpoint = checkpoint
        self._flow = flow
        self._metrics = metrics
        self._stats = stats
        self.fatal: BaseException | None = None

    def send(
        self, record: Record, why: DeadLetter, ticket: Ticket | None, *, size: int,
        counted: bool = False,
    ) -> None:
        """Dead-letter ``record``; ``counted``: it is already in flight (else it is counted in
        until written)."""
        tp = (record.topic, record.partition)
        flow = self._flow
        if not counted:
            flow.records += 1
            flow.bytes += size
        if self._writer is None:
            raise DeliveryError(
                f'partition="{record.topic}[{record.partition}]" offset={record.offset} route '
                f"{why.route}: {why.error}. No dead_letter.topic is configured, so the bridge "
                "stops here rather than skip it; set dead_letter.topic to keep the stream going."
            )
        topic = self._writer.topic

        def done(error: str | None) -> None:
            flow.done(size)
            if error is not None:
                self.fatal = DeliveryError(f"dead-letter write to {topic} failed: {error}")
                return
            self._stats.dead_lettered += 1
            self._metrics.dead_lettered.labels(why.route, why.reason).inc()
            self._metrics.delivered.labels(why.route, "dead_lettered").inc()
            self._checkpoint.ack(tp, record.offset, ticket)

        self._writer.send(record, why, done)

    def poll(self) -> None:
        """Serve the broker's acknowledgements (runs ``done`` callbacks)."""
        if self._writer is not None:
            self._writer.poll()

    def flush(self, timeout: float) -> None:
        if self._writer is not None:
            self._writer.flush(timeout)


class Settler:
    """Turns finished batches into acks, retries and dead letters. The loop's only."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        checkpoint: Checkpointer,
        dispatch: Dispatcher,
        flow: InFlight,
        dead: DeadLetters,
        backoff: Backoff,
        *,
        metrics: GroupMetrics,
        stats: BridgeStats,
        throttle: Throttle,
    ) -> None:
        self._sinks = sinks
        self._checkpoint = checkpoint
        self._dispatch = dispatch
        self._flow = flow
        self._dead = dead
        self._backoff = backoff
        self._count_outages = backoff.policy.count_outages
        self._metrics = metrics
        self._stats = stats
        self._throttle = throttle
        self._sampler = LatencySampler(stats)
        self._m_ok = [metrics.delivered.labels(s.name, "ok") for s in sinks]
        self._m_batch_ok = [metrics.batches.labels(s.name, "ok") for s in sinks]
        self._m_latency = [metrics.latency.labels(s.name) for s in sinks]
        self._m_unavailable = [metrics.unavailable.labels(s.name) for s in sinks]
        self._unavailable = [False] * len(sinks)
        for gauge in self._m_unavailable:
            gauge.set(0)

    def settle_ready(self, wait: float = 0.0) -> None:
        """Settle every batch the workers finished (waiting up to ``wait`` s for the first)."""
        for batch, results in self._dispatch.finished(wait):
            self.settle(batch, results)

    def settle(self, batch: Batch, results: Sequence[DeliveryError | None]) -> None:
        dest = batch.destination
        sink = self._sinks[dest]
        now = time.monotonic()
        if not any(results):  # all accepted: the hot path
            self.delivered(batch.messages, dest, now)
            self._m_batch_ok[dest].inc()
            if self._unavailable[dest]:
                self._unavailable[dest] = False
                self._m_unavailable[dest].set(0)
                self._metrics.unavailable_routes.discard(sink.name)
                log.warning("%s available again", sink.name)
            self._dispatch.release(batch.key)
            return
        retry: list[Message] = []
        wait = 0.0
        outage: RetryableDeliveryError | None = None  # to log, when only outages failed
        own_failure = False  # some record failed on its own
        self.delivered([m for m, r in zip(batch.messages, results, strict=True) if r is None],
                       dest, now)
        for m, result in zip(batch.messages, results, strict=True):
            if result is None:
                continue
            record = m.record
            tp = (record.topic, record.partition)
            if isinstance(result, CredentialsRefusedError):  # no record can get through
                raise ServiceError(str(result), status=result.status)
            if not self._checkpoint.owns(tp, m.ticket):
                self._flow.done(m.size)
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
            self._dead.send(record, why, m.ticket, size=m.size, counted=True)
        self._metrics.batches.labels(sink.name, "partial").inc()
        if outage is not None and not own_failure:  # the destination as a whole
            if not self._unavailable[dest]:
                self._unavailable[dest] = True
                self._m_unavailable[dest].set(1)
                self._metrics.unavailable_routes.add(sink.name)
            if self._throttle.ready(now):
                log.warning("%s unavailable, holding %d records in flight and retrying "
                            "(partitions pause while the in-flight limit holds): %s",
                            sink.name, self._flow.records, outage)
        if retry:
            self._stats.retries += len(retry)
            self._metrics.retries.labels(sink.name).inc(len(retry))
            self._dispatch.retry_later(
                Batch(batch.key, retry, sum(m.size for m in retry), now, now + wait)
            )
            return  # an ordered key stays busy until its retries settle
        self._dispatch.release(batch.key)

    def delivered(self, messages: list[Message], dest: int, now: float) -> None:
        """Acknowledge accepted messages; their latencies are observed per poll (one
        observation per group of messages polled together, weighted by its size)."""
        if not messages:
            return
        live = self._checkpoint.live
        observe = self._m_latency[dest].observe
        sample = self._sampler.add
        size = n = 0
        polled = messages[0].first_sent
        for m in messages:
            size += m.size
            ticket = m.ticket
            if ticket in live:  # else revoked meanwhile: nothing to commit for it
                ticket.ack(m.record.offset)
            if m.first_sent != polled:
                observe(now - polled, n)
                sample(now - polled, n)
                polled, n = m.first_sent, 0
            n += 1
        observe(now - polled, n)
        sample(now - polled, n)
        flow = self._flow
        flow.records -= len(messages)
        flow.bytes -= size
        self._metrics.progress = now
        self._stats.delivered += len(messages)
        self._m_ok[dest].inc(len(messages))

    def resend_due(self, now: float) -> None:
        """Submit the retries whose time has come, without the messages of partitions no
        longer owned by the assignment that read them."""
        owns = self._checkpoint.owns
        for batch in self._dispatch.due_retries(now):
            owned = []
            for m in batch.messages:
                if owns((m.record.topic, m.record.partition), m.ticket):
                    owned.append(m)
                else:
                    self._flow.done(m.size)
            if owned:
                batch.messages = owned
                self._dispatch.submit(batch, retry=True)
            else:
                self._dispatch.release(batch.key)
