"""A keyed log of small JSON documents on a (compacted, one-partition) Kafka topic.

Writers append ``key -> JSON`` with ``acks=all`` and wait for the broker's acknowledgement;
readers either read the whole topic to its current end (:meth:`StateLog.read`) or follow it
(:class:`StateTail`): a consumer without a group, assigned every partition from the beginning,
so every reader sees every record and no group membership or commit is involved.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from migrator.config import KafkaConnection
from migrator.errors import KafkaUnavailableError
from migrator.kafka.answers import map_kafka_error
from migrator.kafka.client_log import librdkafka_logger

__all__ = [
    "LogEntry",
    "StateLog",
    "StateTail",
    "iter_keys",
]

log = logging.getLogger(__name__)

LogEntry = tuple[str, dict[str, Any], int]  # key, document, offset


def _decode(msg: Any) -> LogEntry | None:
    key = msg.key()
    value = msg.value()
    if key is None or value is None:
        return None
    try:
        doc = json.loads(value)
    except ValueError:
        log.warning("ignoring a state record that is not JSON at offset %d", msg.offset())
        return None
    if not isinstance(doc, dict):
        return None
    return key.decode("utf-8", "replace"), doc, int(msg.offset())


class StateTail:
    """Follows the log: :meth:`poll` returns the entries that arrived since the last call."""

    def __init__(self, connection: KafkaConnection, topic: str, *, timeout: float = 30.0) -> None:
        self._servers = connection.bootstrap_servers
        self._topic = topic
        conf: dict[str, Any] = dict(connection.to_librdkafka())
        conf.update({
            "group.id": "migrator-state-reader",  # required by the client; never joined
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "enable.partition.eof": "true",
            "fetch.wait.max.ms": "100",
            "logger": librdkafka_logger(),
        })
        self._consumer = Consumer(conf)
        try:
            metadata = self._consumer.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            raise map_kafka_error(exc, f"reading topic {topic!r}", self._servers) from None
        tmeta = metadata.topics.get(topic)
        if tmeta is None or tmeta.error is not None or not tmeta.partitions:
            raise KafkaUnavailableError(f"Kafka at {self._servers} has no topic {topic!r}.")
        self._partitions = sorted(tmeta.partitions)
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in self._partitions])
        self._eof: set[int] = set()

    def poll(self, timeout: float = 0.1) -> list[LogEntry]:
        out: list[LogEntry] = []
        try:
            messages = self._consumer.consume(num_messages=500, timeout=timeout)
        except KafkaException as exc:
            raise map_kafka_error(exc, f"reading topic {self._topic!r}", self._servers) from None
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._eof.add(int(msg.partition() or 0))
                else:
                    log.warning("reading %s: %s", self._topic, err.str())
                continue
            self._eof.discard(int(msg.partition() or 0))
            entry = _decode(msg)
            if entry is not None:
                out.append(entry)
        return out

    def read_to_end(self, timeout: float = 30.0) -> list[LogEntry]:
        """Every entry up to the end of each partition as it was when this call began."""
        ends = {}
        for p in self._partitions:
            try:
                _low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self._topic, p), timeout=timeout)
            except KafkaException as exc:
                raise map_kafka_error(exc, f"reading topic {self._topic!r}", self._servers) from None
            ends[p] = high
        out: list[LogEntry] = []
        deadline = time.monotonic() + timeout
        while True:
            positions = {tp.partition: tp.offset for tp in self._consumer.position(
                [TopicPartition(self._topic, p) for p in self._partitions])}
            if all(positions.get(p, -1) >= ends[p] or (ends[p] == 0) for p in self._partitions):
                return out
            if time.monotonic() > deadline:
                raise KafkaUnavailableError(
                    f"Kafka at {self._servers}: topic {self._topic!r} could not be read to its "
                    f"end within {timeout:.0f}s (at {positions}, end {ends})."
                )
            out.extend(self.poll(0.2))

    def close(self) -> None:
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.debug("closing the state reader: %s", exc)


class StateLog:
    """Append and read back keyed JSON documents."""

    def __init__(self, connection: KafkaConnection, topic: str) -> None:
        self._connection = connection
        self._topic = topic
        conf: dict[str, Any] = dict(connection.to_librdkafka())
        conf.update({"acks": "all", "enable.idempotence": "true", "linger.ms": "0",
                     "logger": librdkafka_logger()})
        self._producer = Producer(conf)

    @property
    def topic(self) -> str:
        return self._topic

    def append(self, key: str, document: dict[str, Any], timeout: float = 30.0) -> None:
        """Write one document and wait until the broker acknowledged it."""
        errors: list[KafkaError] = []

        def done(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        what = f"writing to topic {self._topic!r}"
        try:
            self._producer.produce(self._topic, key=key.encode(),
                                   value=json.dumps(document, sort_keys=True).encode(),
                                   on_delivery=done)
            left = self._producer.flush(timeout)
        except KafkaException as exc:
            raise map_kafka_error(exc, what, self._connection.bootstrap_servers) from None
        if errors:
            raise map_kafka_error(KafkaException(errors[0]), what, self._connection.bootstrap_servers)
        if left:
            raise KafkaUnavailableError(
                f"Kafka at {self._connection.bootstrap_servers} did not acknowledge {what} "
                f"within {timeout:.0f}s.")

    def read(self, timeout: float = 30.0) -> list[LogEntry]:
        """Every entry in the topic, oldest first (compaction may have dropped older versions)."""
        tail = StateTail(self._connection, self._topic, timeout=timeout)
        try:
            return tail.read_to_end(timeout)
        finally:
            tail.close()

    def latest(self, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """The last document per key."""
        out: dict[str, dict[str, Any]] = {}
        for key, doc, _offset in self.read(timeout):
            out[key] = doc
        return out

    def close(self) -> None:
        self._producer.flush(5.0)


def iter_keys(entries: list[LogEntry], key: str) -> Iterator[dict[str, Any]]:
    """Every version of one key, oldest first."""
    for k, doc, _offset in entries:
        if k == key:
            yield doc
