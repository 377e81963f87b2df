"""Dead letters: undeliverable records go to a Kafka topic, intact, with the reason attached.

The dead letter keeps the original key, value and headers and adds:
``dead-letter-reason`` (undecodable | rejected | retries-exhausted | tombstone),
``dead-letter-status`` (HTTP status, when there was one), ``dead-letter-attempts``,
``dead-letter-route``, ``dead-letter-error`` (a one-line message) and
``dead-letter-source-topic`` / ``-partition`` / ``-offset``.

Producing is asynchronous; ``on_done(error_or_None)`` runs from :meth:`DeadLetterWriter.poll`
(the runner's loop) once the broker acknowledged the write, and only then may the source offset
be committed. The producer (:class:`migrator.kafka.producer.KafkaProducer`) is idempotent with
``acks=all``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from connectors.sink import Record
from migrator.config import KafkaConnection
from migrator.kafka.producer import KafkaProducer

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

    def __init__(self, connection: KafkaConnection, topic: str) -> None:
        self.topic = topic
        self._producer = KafkaProducer(connection)
        self.in_flight = 0

    def send(self, record: Record, why: DeadLetter, on_done: DoneCallback) -> None:
        headers: list[tuple[str, bytes | None]] = list(record.headers)
        headers.extend(why.headers(record))

        def delivered(error: str | None) -> None:
            self.in_flight -= 1
            on_done(error)

        self.in_flight += 1
        self._producer.produce(
            self.topic, value=record.value, key=record.key, headers=headers,
            timestamp=record.timestamp, on_delivery=delivered,
        )

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding dead letters; the number still unacknowledged."""
        return self._producer.flush(timeout)
