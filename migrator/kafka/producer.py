"""A narrow wrapper around ``confluent_kafka.Producer``: idempotent, ``acks=all``, callbacks
with a plain error text.

:meth:`KafkaProducer.produce` never raises for a full local queue: it serves delivery reports
until there is room. ``on_delivery(error_or_None)`` runs from :meth:`KafkaProducer.poll` or
:meth:`KafkaProducer.flush`, on the caller's thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from migrator.config import KafkaConnection
from migrator.kafka.errors import rejected_settings

__all__ = ["DeliveryCallback", "KafkaProducer"]

DeliveryCallback = Callable[[str | None], None]
"""Called once per produced record: None when the broker acknowledged it, else the error."""

_DEFAULTS = {"enable.idempotence": True, "acks": "all", "linger.ms": 5}


class KafkaProducer:
    """Produces records to any topic of one cluster."""

    def __init__(
        self,
        connection: KafkaConnection,
        *,
        overrides: Mapping[str, Any] | None = None,
        factory: Callable[[dict[str, Any]], Any] = Producer,
    ) -> None:
        conf: dict[str, Any] = connection.to_librdkafka()
        conf.update(_DEFAULTS)
        conf.update(overrides or {})
        try:
            self._producer = factory(conf)
        except KafkaException as exc:
            raise rejected_settings(exc, "producer", conf, "fix it in -X, kafka.options or the "
                                    "properties file.") from None

    def produce(
        self,
        topic: str,
        *,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
        timestamp: int | None,
        on_delivery: DeliveryCallback,
    ) -> None:
        """Queue one record (``timestamp`` in ms, None: the producer's clock)."""

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            on_delivery(None if err is None else err.str())

        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=list(headers),
                    timestamp=timestamp or 0, on_delivery=delivered,
                )
                break
            except BufferError:  # the local queue is full: serve delivery reports, try again
                self._producer.poll(0.1)
        self._producer.poll(0)

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports that arrived."""
        self._producer.poll(timeout)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding records; the number still unacknowledged."""
        left: int = self._producer.flush(timeout)
        return left
