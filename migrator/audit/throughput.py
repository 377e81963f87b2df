"""Records per second per topic from two high-watermark snapshots (no consumer needed)."""

from __future__ import annotations

from collections.abc import Mapping

from migrator.kafka.descriptions import TopicPartitionKey

__all__ = ["topic_rates"]


def topic_rates(
    before: Mapping[TopicPartitionKey, int],
    after: Mapping[TopicPartitionKey, int],
    elapsed: float,
) -> dict[str, float]:
    """Per topic: records appended between the snapshots divided by the seconds between them.

    Partitions missing from either snapshot count as zero; a watermark that went backwards
    (topic re-created) counts as zero too.
    """
    if elapsed <= 0:
        return {}
    appended: dict[str, int] = {}
    for key, start in before.items():
        topic = key[0]
        appended.setdefault(topic, 0)
        end = after.get(key)
        if end is not None and end > start:
            appended[topic] += end - start
    return {topic: round(count / elapsed, 3) for topic, count in appended.items()}
