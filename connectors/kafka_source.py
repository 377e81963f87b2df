"""The Kafka source: records from the callback-safe consumer wrapper, as :class:`Record`.

Group membership, offsets and pausing stay on :class:`migrator.kafka.consumer.KafkaConsumer`
(the runner drives them); the source only turns polled messages into records.
"""

from __future__ import annotations

from typing import Any

from connectors.sink import Record
from migrator.kafka.consumer import KafkaConsumer

__all__ = ["KafkaSource", "to_record"]


def to_record(msg: Any) -> Record:
    """A confluent-kafka ``Message`` as a :class:`Record` (timestamp None when unavailable)."""
    ts_type, ts = msg.timestamp()
    return Record(
        msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers() or [],
        ts if ts_type else None,
    )


class KafkaSource:
    """Reads records through a :class:`KafkaConsumer`."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self.consumer = consumer

    def read(self, max_records: int, timeout: float) -> list[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout`` seconds for the first."""
        return [to_record(m) for m in self.consumer.consume(max_records, timeout)]
