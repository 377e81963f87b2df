"""Dead letters: undeliverable records go to a Kafka topic, intact, with the reason attached.

The dead letter keeps the original key, value and headers and adds:
``dead-letter-reason`` (undecodable | rejected | retries-exhausted | tombstone),
``dead-letter-status`` (HTTP status, when there was one), ``dead-letter-attempts``,
``dead-letter-route``, ``dead-letter-error`` (a one-line message) and
``dead-letter-source-topic`` / ``-partition`` / ``-offset``.

Producing is asynchronous; ``on_done(error_or_None)`` runs from :meth:`DeadLetterWriter.poll`
(the runner's loop) once the broker acknowledged the write, and only then may the source offset
be committed. The producer is idempotent with ``acks=all``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Producer

from connectors.sink import Record
from migrator.config import KafkaConnection

__all__ = ["DeadLetter", "DeadLetterWriter"]

log = logging.getLogger(__name__)

DoneCallback = Callable[[str | None], None]


class DeadLetter:
    """Why a record is dead: the fields that become ``dead-letter-*`` headers."""

    __slots__ = ("attempts", "error", "reason", "route", "status")

    def __init__(
        self, reason: str, error: str, *, route: str, status: int | None = None, attempts: int = 0
    ) -> None:
        self.reason, self.error, self.route = reason, error, route
        self.status, self.attempts = status, attempts

    def headers(self, record: Record) -> list[tuple[str, bytes]]:
        out = [
            ("dead-letter-reason", self.reason.encode()),
            ("dead-letter-error", self.error[:500].encode()),
            ("dead-letter-route", self.route.encode()),
            ("dead-letter-attempts", str(self.attempts).encode()),
            ("dead-letter-source-topic", record.topic.encode()),
            ("dead-letter-source-partition", str(record.partition).encode()),
            ("dead-letter-source-offset", str(record.offset).encode()),
        ]
        if self.status is not None:
            out.append(("dead-letter-status", str(self.status).encode()))
        return out


class DeadLetterWriter:
    """Produces dead letters to one topic."""

    def __init__(
        self,
        connection: KafkaConnection,
        topic: str,
        *,
        factory: Callable[[dict[str, Any]], Any] = Producer,
    ) -> None:
        conf: dict[str, Any] = connection.to_librdkafka()
        conf.update({"enable.idempotence": True, "acks": "all", "linger.ms": 5})
        self.topic = topic
        self._producer = factory(conf)
        self.in_flight = 0

    def send(self, record: Record, why: DeadLetter, on_done: DoneCallback) -> None:
        headers: list[tuple[str, bytes | None]] = list(record.headers)
        headers.extend(why.headers(record))

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            self.in_flight -= 1
            on_done(None if err is None else err.str())

        self.in_flight += 1
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    value=record.value,
                    key=record.key,
                    headers=headers,
                    timestamp=record.timestamp or 0,
                    on_delivery=delivered,
                )
                break
            except BufferError:
                self._producer.poll(0.1)
        self._producer.poll(0)

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding dead letters; the number still unacknowledged."""
        left: int = self._producer.flush(timeout)
        return left
