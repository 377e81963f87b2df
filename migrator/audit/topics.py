"""The topics section: partitions, watermarks and configs, read with batched admin calls.

Cost is a fixed number of requests per 1,000 topics (describe, configs) and per 20,000
partitions (earliest, latest and 24-hours-ago offsets): linear in partitions, no per-topic
round trips.
"""

from __future__ import annotations

import fnmatch
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from migrator.audit.progress import NullProgress, Progress
from migrator.inventory import ConfigValue, PartitionInfo, TopicInfo
from migrator.kafka.admin import KafkaAdmin
from migrator.kafka.descriptions import TopicDescription, TopicPartitionKey
from migrator.topic_roles import is_internal

__all__ = ["KEY_CONFIGS", "TopicFilter", "TopicSnapshot", "build_topics", "snapshot_topics"]

# Reported for every topic; the rest of the configs are kept only when overridden.
KEY_CONFIGS = (
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "max.message.bytes",
    "min.insync.replicas",
    "compression.type",
    "message.timestamp.type",
)
DAY_MS = 86_400_000


@dataclass(frozen=True)
class TopicFilter:
    """--include / --exclude shell globs (an empty include list means every topic)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude)

    def __call__(self, name: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(name, g) for g in self.include):
            return False
        return not any(fnmatch.fnmatchcase(name, g) for g in self.exclude)


@dataclass
class TopicSnapshot:
    """Everything read about the selected topics at one moment."""

    descriptions: dict[str, TopicDescription]
    configs: dict[str, dict[str, ConfigValue]]
    low: dict[TopicPartitionKey, int]
    high: dict[TopicPartitionKey, int]
    day_ago: dict[TopicPartitionKey, int]
    taken_at: float  # time.monotonic()

    @property
    def partitions(self) -> list[TopicPartitionKey]:
        return [(d.name, p.partition) for d in self.descriptions.values() for p in d.partitions]


def snapshot_topics(
    admin: KafkaAdmin,
    selected: TopicFilter,
    progress: Progress | None = None,
    *,
    now_ms: int | None = None,
) -> TopicSnapshot:
    progress = progress or NullProgress()
    progress.step("listing topics")
    names = [n for n in admin.list_topic_names() if selected(n)]
    progress.step("describing topics", len(names))
    descriptions = admin.describe_topics(names)
    progress.advance(len(names))
    partitions = [(d.name, p.partition) for d in descriptions.values() for p in d.partitions]
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms

    def latest() -> tuple[dict[TopicPartitionKey, int], float]:
        result = admin.list_offsets(partitions, "latest")
        return result, time.monotonic()

    # Configs and the three offset lists are independent: in flight together, one wait.
    progress.step("reading configs and watermarks", 4)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="audit-topics") as pool:
        f_configs = pool.submit(admin.describe_topic_configs, list(descriptions), KEY_CONFIGS)
        f_low = pool.submit(admin.list_offsets, partitions, "earliest")
        f_high = pool.submit(latest)
        f_day = pool.submit(admin.list_offsets, partitions, now_ms - DAY_MS)
        waiting: list[Future[Any]] = [f_configs, f_low, f_high, f_day]
        for _ in as_completed(waiting):
            progress.advance()
        raw_configs, low, (high, taken_at), day_ago = (
            f_configs.result(), f_low.result(), f_high.result(), f_day.result())
    configs = {
        topic: {
            key: ConfigValue(
                value=entry.value, source=entry.source, is_default=entry.is_default,
                is_sensitive=entry.is_sensitive,
            )
            for key, entry in sorted(entries.items())
        }
        for topic, entries in raw_configs.items()
    }
    return TopicSnapshot(descriptions, configs, low, high, day_ago, taken_at)


def build_topics(
    snap: TopicSnapshot,
    *,
    high: dict[TopicPartitionKey, int] | None = None,
    rates: dict[str, float] | None = None,
) -> list[TopicInfo]:
    """TopicInfo models (watermarks from ``high`` if a later snapshot was taken)."""
    high = high or snap.high
    rates = rates or {}
    topics = []
    for name in sorted(snap.descriptions):
        desc = snap.descriptions[name]
        parts = []
        last_day = 0
        for p in desc.partitions:
            key = (name, p.partition)
            hw = high.get(key, snap.high.get(key, 0))
            lw = snap.low.get(key, 0)
            parts.append(PartitionInfo(
                partition=p.partition, leader=p.leader, replicas=list(p.replicas),
                isr=list(p.isr), low_watermark=lw, high_watermark=hw,
            ))
            since = snap.day_ago.get(key, -1)
            # -1: no record in the last 24 h. Offsets below the low watermark were deleted.
            if since >= 0:
                last_day += max(0, snap.high.get(key, 0) - max(since, lw))
        topics.append(TopicInfo(
            name=name,
            internal=is_internal(name, desc.internal),
            partitions=parts,
            replication_factor=len(desc.partitions[0].replicas) if desc.partitions else 0,
            configs=snap.configs.get(name, {}),
            records_per_second=rates.get(name),
            records_last_24h=last_day,
        ))
    return topics
