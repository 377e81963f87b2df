"""A narrow, callback-safe wrapper around ``confluent_kafka.Consumer``.

What it adds to the raw client:

* offsets are never stored or committed behind our back (``enable.auto.offset.store=false``,
  ``enable.auto.commit=false``); callers commit explicit offsets;
* exceptions raised inside ``on_assign`` / ``on_revoke`` / ``on_lost`` (which librdkafka would
  otherwise swallow) are stored and re-raised from the next :meth:`KafkaConsumer.consume` call
  on the main loop;
* librdkafka errors become toolkit errors (:class:`~migrator.errors.KafkaAuthError`, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from migrator.config import KafkaConnection
from migrator.errors import ConfigError, KafkaAuthError, KafkaUnavailableError, MigratorError

__all__ = ["AssignmentCallback", "KafkaConsumer", "Partition"]

log = logging.getLogger(__name__)

Partition = tuple[str, int]
AssignmentCallback = Callable[[list[TopicPartition]], None]

_FORCED = {"enable.auto.offset.store": "false", "enable.auto.commit": "false"}
_AUTH_CODES = {
    KafkaError._AUTHENTICATION,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
}

# a commit refused because this member's generation is over (the partitions are or will be
# someone else's): not an outage
_MEMBERSHIP_CODES = {
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.FENCED_INSTANCE_ID,
}


def _wrap(exc: KafkaException, what: str, where: str = "") -> MigratorError:
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is not None and err.code() in _AUTH_CODES:
        at = f" at {where}" if where else ""
        return KafkaAuthError(f"Kafka{at} refused {what}: {err.str()}")
    detail = err.str() if err is not None else str(exc)
    return KafkaUnavailableError(f"Kafka failed during {what}: {detail}")


class KafkaConsumer:
    """One group member. Call :meth:`subscribe`, then :meth:`consume` in a loop, then :meth:`close`.

    ``on_assign`` / ``on_revoke`` run inside :meth:`consume` (librdkafka's callback thread is the
    caller's thread). When ``on_assign`` is given it must call :meth:`assign` itself (it receives
    the partitions and may set their start offsets).
    """

    def __init__(
        self,
        connection: KafkaConnection,
        group: str,
        *,
        overrides: Mapping[str, str] | None = None,
        factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        conf: dict[str, Any] = connection.to_librdkafka()
        conf.update({"group.id": group, "auto.offset.reset": "earliest"})
        conf.update(overrides or {})
        conf.update(_FORCED)
        conf["error_cb"] = self._on_error
        # librdkafka's own log lines go to logging (debug), not raw to stderr: error_cb already
        # reports each problem once, as a warning or an error
        from migrator.kafka.admin import librdkafka_logger

        conf.setdefault("logger", librdkafka_logger())
        self._group = group
        self._where = connection.describe()  # auth errors name the protocol and SASL mechanism
        # cooperative protocols hand over only the partitions that move, which a member adds
        # with incremental_assign (assign() would replace the whole assignment)
        self.cooperative = "cooperative" in str(conf.get("partition.assignment.strategy", ""))
        try:
            self._consumer = factory(conf)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else exc
            detail = err.str() if isinstance(err, KafkaError) else str(err)
            raise ConfigError(f"Kafka consumer settings rejected: {detail}") from None
        self._pending: BaseException | None = None
        self._fatal: str | None = None

    @property
    def group(self) -> str:
        return self._group

    # -- callbacks (run inside librdkafka calls; never raise into C) -------------------------

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal() or err.code() in _AUTH_CODES:
            self._fatal = err.str()
            if self._pending is None:
                self._pending = _wrap(KafkaException(err), "consume", self._where)
        else:
            log.warning("kafka: %s", err.str())

    def _guard(self, callback: AssignmentCallback | None) -> Callable[[Any, list[TopicPartition]], None]:
        def run(_consumer: Any, partitions: list[TopicPartition]) -> None:
            if callback is None:
                return
            try:
                callback(partitions)
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
            raise _wrap(exc, "subscribe", self._where) from None

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Take ``partitions`` (from ``on_assign``, offsets optional): with a cooperative
        protocol they are added to the assignment, with an eager one they are the assignment."""
        if self.cooperative:
            self._consumer.incremental_assign(partitions)
        else:
            self._consumer.assign(partitions)

    def assignment(self) -> list[TopicPartition]:
        result: list[TopicPartition] = self._consumer.assignment()
        return result

    def consume(self, max_records: int, timeout: float) -> list[Any]:
        """Up to ``max_records`` messages (errors filtered out and logged or raised)."""
        self.raise_pending()
        try:
            messages = self._consumer.consume(num_messages=max_records, timeout=timeout)
        except KafkaException as exc:
            raise _wrap(exc, "consume", self._where) from None
        self.raise_pending()
        out = []
        for msg in messages:
            err = msg.error()
            if err is None:
                out.append(msg)
            elif err.code() == KafkaError._PARTITION_EOF:
                continue
            elif err.fatal() or err.code() in _AUTH_CODES:
                raise _wrap(KafkaException(err), "consume", self._where)
            else:
                log.warning("kafka: %s", err.str())
        return out

    # -- offsets -----------------------------------------------------------------------------

    def commit(self, offsets: Mapping[Partition, int], *, asynchronous: bool = False) -> bool:
        """Commit ``offset`` (the next offset to read) for each partition; nothing else.

        False when the group refused it because this member's membership moved on (thrown
        out, or a rebalance under way): the partitions' new owner starts from the last
        committed offset, and the loop learns of the loss from the rebalance callbacks.
        """
        if not offsets:
            return True
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=tps, asynchronous=asynchronous)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            code = err.code() if isinstance(err, KafkaError) else None
            if code == KafkaError._NO_OFFSET:
                return True
            if code in _MEMBERSHIP_CODES:
                log.warning("commit refused, membership moved on: %s", exc)
                return False
            raise _wrap(exc, "commit", self._where) from None
        return True

    def committed(self, partitions: Iterable[Partition], timeout: float = 10.0) -> dict[Partition, int]:
        """Committed offsets of this group (partitions without one are left out)."""
        tps = [TopicPartition(t, p) for t, p in partitions]
        try:
            got = self._consumer.committed(tps, timeout=timeout)
        except KafkaException as exc:
            raise _wrap(exc, "committed", self._where) from None
        return {(tp.topic, tp.partition): tp.offset for tp in got if tp.offset >= 0}

    def offsets_for_time(
        self, partitions: Iterable[Partition], timestamp_ms: int, timeout: float = 10.0
    ) -> dict[Partition, int]:
        """The first offset at or after ``timestamp_ms`` per partition (-1: end of partition)."""
        tps = [TopicPartition(t, p, timestamp_ms) for t, p in partitions]
        try:
            got = self._consumer.offsets_for_times(tps, timeout=timeout)
        except KafkaException as exc:
            raise _wrap(exc, "offsets_for_times", self._where) from None
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
            raise _wrap(exc, "watermarks", self._where) from None
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
            raise _wrap(exc, "seek", self._where) from None

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
