"""A narrow, callback-safe wrapper around ``confluent_kafka.Consumer``.

What it adds to the raw client:

* offsets are never stored or committed behind our back (``enable.auto.offset.store=false``,
  ``enable.auto.commit=false``); callers commit explicit offsets;
* exceptions raised inside ``on_assign`` / ``on_revoke`` / ``on_lost`` (which librdkafka would
  otherwise swallow) are stored and re-raised from the next :meth:`KafkaConsumer.consume` call
  on the main loop;
* librdkafka errors become toolkit errors (:class:`~migrator.errors.KafkaAuthError`, ...) by
  :func:`migrator.kafka.errors.translate`;
* with ``statistics.interval.ms`` set (the bridge's default), a client stranded without any
  broker is replaced by a new one (:class:`BrokerWatch`, :meth:`KafkaConsumer.consume`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from migrator.config import KafkaConnection
from migrator.kafka.broker_watch import BrokerWatch, known_brokers
from migrator.kafka.commits import AsyncCommit, commit_refusal
from migrator.kafka.consumer_config import consumer_settings
from migrator.kafka.errors import error_code, is_fatal, rejected_settings, translate

__all__ = [
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "AssignmentCallback",
    "KafkaConsumer",
    "Partition",
]

log = logging.getLogger(__name__)

Partition = tuple[str, int]
AssignmentCallback = Callable[[list[Partition]], None]
# OFFSET_BEGINNING / OFFSET_END: start offsets for :meth:`KafkaConsumer.assign` (the partition's
# first / next new record), re-exported so that no caller needs confluent_kafka itself


class KafkaConsumer:
    """One group member. Call :meth:`subscribe`, then :meth:`consume` in a loop, then :meth:`close`.

    ``on_assign`` / ``on_revoke`` run inside :meth:`consume` (librdkafka's callback thread is the
    caller's thread) and receive ``(topic, partition)`` pairs. When ``on_assign`` is given it must
    call :meth:`assign` itself (with start offsets for partitions that need one).
    """

    def __init__(
        self,
        connection: KafkaConnection,
        group: str,
        *,
        defaults: Mapping[str, str] | None = None,
        factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        """``defaults`` sit below the user's settings (see :func:`consumer_settings`)."""
        conf: dict[str, Any] = dict(consumer_settings(connection, group, defaults))
        conf["error_cb"] = self._on_error
        conf["stats_cb"] = self._on_stats
        # librdkafka's own log lines go to logging (debug), not raw to stderr: error_cb already
        # reports each problem once, as a warning or an error
        from migrator.kafka.client_log import librdkafka_logger

        conf.setdefault("logger", librdkafka_logger())
        # notices a client stranded without brokers (None: statistics.interval.ms is off)
        self.watch: BrokerWatch | None = None
        if _positive(conf.get("statistics.interval.ms")):
            self.watch = BrokerWatch()
        conf["on_commit"] = self._on_commit
        self._async = AsyncCommit()
        self._conf = conf
        self._factory = factory
        self._subscription: tuple[list[str], dict[str, Any]] | None = None
        self.renewals = 0  # clients replaced because they were stranded without a broker
        self._group = group
        # errors name the servers, the protocol and the SASL mechanism
        self._servers = connection.describe()
        # cooperative protocols hand over only the partitions that move, which a member adds
        # with incremental_assign (assign() would replace the whole assignment)
        self.cooperative = "cooperative" in str(conf.get("partition.assignment.strategy", ""))
        try:
            self._consumer = factory(conf)
        except KafkaException as exc:
            raise rejected_settings(exc, "consumer", conf, "fix it in -X, kafka.options or the "
                                    "properties file.") from None
        self._pending: BaseException | None = None
        self._fatal: str | None = None
        # from librdkafka's statistics (statistics.interval.ms): is a connection to a broker of
        # the cluster up (None: no statistics yet, or statistics turned off)
        self.brokers_up: bool | None = None

    @property
    def group(self) -> str:
        return self._group

    # -- callbacks (run inside librdkafka calls; never raise into C) -------------------------

    def _on_error(self, err: KafkaError) -> None:
        if is_fatal(err):
            self._fatal = err.str()
            if self._pending is None:
                self._pending = translate(err, "consuming", self._servers)
        else:
            log.warning("kafka: %s", err.str())

    def _on_stats(self, raw: str) -> None:
        try:
            stats = json.loads(raw)
        except ValueError:
            return
        if not isinstance(stats, Mapping):
            return
        brokers = stats.get("brokers") or {}
        if isinstance(brokers, Mapping) and brokers:
            # every connection: the brokers, the bootstrap ones, the group coordinator
            self.brokers_up = any(isinstance(b, Mapping) and b.get("state") == "UP"
                                  for b in brokers.values())
        if self.watch is not None:
            self.watch.observe(known_brokers(stats), time.monotonic())

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The result of a commit (librdkafka reports synchronous ones here too): settles the
        asynchronous commit whose offsets it carries."""
        settled = self._async.settle(err, partitions, self._servers)
        if settled is None:
            return
        done, ok, error = settled
        if error is not None and self._pending is None:
            self._pending = error
        try:
            done(ok)
        except BaseException as exc:  # resurfaced on the main loop
            if self._pending is None:
                self._pending = exc

    def _guard(self, callback: AssignmentCallback | None) -> Callable[[Any, list[TopicPartition]], None]:
        def run(_consumer: Any, partitions: list[TopicPartition]) -> None:
            if callback is None:
                return
            try:
                callback([(tp.topic, tp.partition) for tp in partitions])
            except BaseException as exc:  # resurfaced on the main loop
                log.debug("rebalance callback failed", exc_info=True)
                if self._pending is None:
                    self._pending = exc

        return run

    def raise_pending(self) -> None:
        """Re-raise an error stored by a callback, once."""
        exc, self._pending = self._pending, None
        if exc is not None:
            raise exc

    # -- group membership --------------------------------------------------------------------

    def subscribe(
        self,
        topics: Sequence[str],
        *,
        on_assign: AssignmentCallback | None = None,
        on_revoke: AssignmentCallback | None = None,
        on_lost: AssignmentCallback | None = None,
    ) -> None:
        """``on_lost`` gets partitions taken away without a revoke (the member was thrown out
        of the group: session timeout or ``max.poll.interval.ms`` exceeded); they may already
        belong to another member, so nothing should be committed for them. Without it,
        ``on_revoke`` is called for them too."""
        kwargs: dict[str, Any] = {
            "on_revoke": self._guard(on_revoke),
            "on_lost": self._guard(on_lost if on_lost is not None else on_revoke),
        }
        if on_assign is not None:
            kwargs["on_assign"] = self._guard(on_assign)
        try:
            self._consumer.subscribe(list(topics), **kwargs)
        except KafkaException as exc:
            raise translate(exc, "a subscription", self._servers) from None
        self._subscription = (list(topics), kwargs)

    def _renew(self) -> None:
        """Replace a client stranded without any broker (see :class:`BrokerWatch`) by a new one
        bootstrapped afresh, subscribed the same way. Closing the old one hands back what it
        still owns (``on_revoke`` / ``on_lost``); the new one joins the group as a new member
        and gets its partitions through ``on_assign``, from the committed offsets."""
        assert self.watch is not None
        log.warning("kafka: the consumer of group %s has known no broker for %.0f s (dropped "
                    "from metadata while the cluster restarted, and not re-bootstrapped); "
                    "replacing it with a new one from bootstrap.servers %s", self._group,
                    self.watch.after, self._servers)
        try:
            self._consumer.close()  # runs the rebalance callbacks for what it still owns
        except (KafkaException, RuntimeError) as exc:
            log.warning("kafka: closing the stranded consumer failed: %s", exc)
        self.watch.reset()
        self._async.forget()  # the old client's commit will not answer any more
        try:
            self._consumer = self._factory(self._conf)
            if self._subscription is not None:
                topics, kwargs = self._subscription
                self._consumer.subscribe(topics, **kwargs)
        except KafkaException as exc:
            raise translate(exc, "a new consumer", self._servers) from None
        self.renewals += 1

    def assign(
        self, partitions: Sequence[Partition], starts: Mapping[Partition, int] | None = None
    ) -> None:
        """Take ``partitions`` (from ``on_assign``), reading each from ``starts[partition]`` when
        given (an offset, :data:`OFFSET_BEGINNING` or :data:`OFFSET_END`), else from the group's
        committed offset: with a cooperative protocol they are added to the assignment, with an
        eager one they are the assignment."""
        starts = starts or {}
        tps = [
            TopicPartition(t, p, starts[(t, p)]) if (t, p) in starts else TopicPartition(t, p)
            for t, p in partitions
        ]
        if self.cooperative:
            self._consumer.incremental_assign(tps)
        else:
            self._consumer.assign(tps)

    def assignment(self) -> list[Partition]:
        return [(tp.topic, tp.partition) for tp in self._consumer.assignment()]

    def consume(self, max_records: int, timeout: float) -> list[Any]:
        """Up to ``max_records`` messages (errors filtered out and logged or raised). A client
        stranded without any broker is replaced first (:class:`BrokerWatch`)."""
        self.raise_pending()
        if self.watch is not None and self.watch.stranded(time.monotonic()):
            self._renew()
            self.raise_pending()
        try:
            messages = self._consumer.consume(num_messages=max_records, timeout=timeout)
        except KafkaException as exc:
            raise translate(exc, "consuming", self._servers) from None
        self.raise_pending()
        out = []
        for msg in messages:
            err = msg.error()
            if err is None:
                out.append(msg)
            elif err.code() == KafkaError._PARTITION_EOF:
                continue
            elif is_fatal(err):
                raise translate(err, "consuming", self._servers)
            else:
                log.warning("kafka: %s", err.str())
        return out

    # -- offsets -----------------------------------------------------------------------------

    def commit(self, offsets: Mapping[Partition, int], *, asynchronous: bool = False) -> bool:
        """Commit ``offset`` (the next offset to read) for each partition; nothing else.

        False when nothing was committed and the caller carries on (keeping the offsets for
        its next commit, where it still owns the partitions):

        * the group refused it because this member's membership moved on (thrown out, or a
          rebalance under way): the partitions' new owner starts from the last committed
          offset, and the loop learns of the loss from the rebalance callbacks;
        * the group coordinator did not answer (its broker down, restarting or moving the
          group: ``_WAIT_COORD``, ``COORDINATOR_NOT_AVAILABLE``, ``NOT_COORDINATOR``, a
          transport failure or a timeout). An outage of the cluster, not of this member:
          librdkafka reconnects and rejoins on its own, so it is no reason to stop.
        """
        if not offsets:
            return True
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=tps, asynchronous=asynchronous)
        except KafkaException as exc:
            if error_code(exc) == KafkaError._NO_OFFSET:
                return True
            self._not_now(exc)
            return False
        return True

    def _not_now(self, exc: KafkaException) -> None:
        """A commit the group cannot take now is logged (see :func:`commit_refusal`); any
        other is raised."""
        error = commit_refusal(exc, self._servers)
        if error is not None:
            raise error from None

    def commit_async(self, offsets: Mapping[Partition, int], done: Callable[[bool], None]) -> bool:
        """Start committing ``offsets`` without waiting: ``done(ok)`` runs inside a later
        :meth:`consume` when the group answers. One at a time (:class:`AsyncCommit`): False
        (nothing started) while an earlier one is unanswered, and when the group cannot take
        it now (membership moved on, coordinator away: the caller's next commit carries the
        offsets). A loop that must not stall commits this way: a synchronous
        commit the coordinator never answers blocks its caller (seen for over 100 s with
        librdkafka 2.16 while the coordinator's broker shut down)."""
        now = time.monotonic()
        if self._async.busy(now):
            return False
        self._async.forget()
        if not offsets:
            return True
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=tps, asynchronous=True)
        except KafkaException as exc:
            if error_code(exc) != KafkaError._NO_OFFSET:
                self._not_now(exc)
            return False
        self._async.start(offsets, done, now)
        return True

    def committed(self, partitions: Iterable[Partition], timeout: float = 10.0) -> dict[Partition, int]:
        """Committed offsets of this group (partitions without one are left out)."""
        tps = [TopicPartition(t, p) for t, p in partitions]
        try:
            got = self._consumer.committed(tps, timeout=timeout)
        except KafkaException as exc:
            raise translate(exc, "reading committed offsets", self._servers) from None
        return {(tp.topic, tp.partition): tp.offset for tp in got if tp.offset >= 0}

    def offsets_for_time(
        self, partitions: Iterable[Partition], timestamp_ms: int, timeout: float = 10.0
    ) -> dict[Partition, int]:
        """The first offset at or after ``timestamp_ms`` per partition (-1: end of partition)."""
        tps = [TopicPartition(t, p, timestamp_ms) for t, p in partitions]
        try:
            got = self._consumer.offsets_for_times(tps, timeout=timeout)
        except KafkaException as exc:
            raise translate(exc, "an offset look-up by time", self._servers) from None
        return {(tp.topic, tp.partition): tp.offset for tp in got}

    def watermarks(
        self, partition: Partition, timeout: float = 5.0, *, cached: bool = False
    ) -> tuple[int, int]:
        """(low, high) watermarks; ``cached`` uses the last fetch response (no request)."""
        try:
            got = self._consumer.get_watermark_offsets(
                TopicPartition(*partition), timeout=timeout, cached=cached
            )
        except KafkaException as exc:
            raise translate(exc, "a watermark look-up", self._servers) from None
        if got is None:
            return -1, -1
        return int(got[0]), int(got[1])

    def position(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        got = self._consumer.position([TopicPartition(t, p) for t, p in partitions])
        return {(tp.topic, tp.partition): tp.offset for tp in got if tp.offset != OFFSET_INVALID}

    # -- flow control ------------------------------------------------------------------------

    def seek(self, partition: Partition, offset: int) -> None:
        """Read ``partition`` from ``offset`` next (it must be assigned; its prefetched records
        are dropped)."""
        try:
            self._consumer.seek(TopicPartition(partition[0], partition[1], offset))
        except KafkaException as exc:
            raise translate(exc, "a seek", self._servers) from None

    def pause(self, partitions: Iterable[Partition]) -> None:
        tps = [TopicPartition(t, p) for t, p in partitions]
        if tps:
            self._consumer.pause(tps)

    def resume(self, partitions: Iterable[Partition]) -> None:
        tps = [TopicPartition(t, p) for t, p in partitions]
        if tps:
            self._consumer.resume(tps)

    def close(self) -> None:
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("kafka: closing the consumer failed: %s", exc)


def _positive(value: object) -> bool:
    try:
        return int(str(value)) > 0
    except ValueError:
        return False
