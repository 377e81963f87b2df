"""How many messages a day QStash would carry for an estate: the one estimate the audit's reports
and the migration plan both state, with where it comes from.

Per topic that moves (role ``data`` in :mod:`migrator.topic_roles`: not Kafka's or Connect's own,
not a Kafka Streams internal, not a retry or dead-letter topic, which QStash's retries and DLQ
replace), records per day are the larger of

* the records appended in the last 24 h (the high watermark minus the offset of 24 h ago), and
* the sampled throughput (records/s between two watermark snapshots ``--sample-seconds`` apart)
  x 86,400,

times the number of consumer groups reading the topic, at least 1 (each group becomes one
endpoint; every delivery to an endpoint counts as a message). Retries are not in this figure:
the plan prices them on top (:mod:`migrator.plan.cost`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migrator.inventory import Inventory
from migrator.topic_roles import classify, readers

__all__ = ["RULE", "SECONDS_PER_DAY", "Measure", "TopicVolume", "VolumeEstimate", "estimate_volume"]

SECONDS_PER_DAY = 86_400
RULE = ("per topic the larger of the records appended in the last 24 h and the sampled "
        "records/s x 86,400, times the groups reading it (at least 1); retry, dead-letter, "
        "internal and Kafka Streams topics left out; retries not included")
Measure = Literal["last 24 h", "throughput sample", "not measured"]


@dataclass(frozen=True)
class TopicVolume:
    topic: str
    records_per_day: int
    fan_out: int
    """Groups reading the topic, at least 1."""
    measured_by: Measure

    @property
    def messages_per_day(self) -> int:
        return self.records_per_day * self.fan_out


@dataclass(frozen=True)
class VolumeEstimate:
    topics: tuple[TopicVolume, ...]
    sampled: bool
    """A throughput sample was taken (audit --sample-seconds > 0)."""

    @property
    def messages_per_day(self) -> int:
        return sum(t.messages_per_day for t in self.topics)

    def topic(self, name: str) -> TopicVolume | None:
        return next((t for t in self.topics if t.topic == name), None)

    @property
    def measurement(self) -> str:
        """How the figures were measured (and what to run when they were not)."""
        counts = {m: sum(1 for t in self.topics if t.measured_by == m)
                  for m in ("last 24 h", "throughput sample", "not measured")}
        parts = [f"{n} topic(s) by {m}" for m, n in counts.items() if n and m != "not measured"]
        if counts["not measured"]:
            parts.append(f"{counts['not measured']} topic(s) not measured (no 24 h count and no "
                         "sample in the inventory)")
        if not self.sampled:
            parts.append("no throughput sample: run audit with --sample-seconds")
        return "measured: " + "; ".join(parts) if parts else "no topic to measure"

    @property
    def explanation(self) -> str:
        """Where the figure comes from and how it was measured."""
        return f"{RULE}; {self.measurement}"

    @property
    def basis(self) -> str:
        """The figure with its explanation, in one sentence."""
        return (f"about {self.messages_per_day:,} messages/day over {len(self.topics)} "
                f"topic(s) ({self.explanation})")


def estimate_volume(inv: Inventory) -> VolumeEstimate:
    """The messages/day estimate for the inventory (see the module docstring)."""
    classes = classify(inv)
    reading = readers(inv)
    volumes = []
    for t in inv.topics:
        if classes[t.name].role != "data":
            continue
        last_day = t.records_last_24h or 0
        sampled = int((t.records_per_second or 0.0) * SECONDS_PER_DAY)
        measured_by: Measure = (
            "throughput sample" if sampled > last_day
            else "last 24 h" if t.records_last_24h is not None
            else "throughput sample" if t.records_per_second is not None
            else "not measured"
        )
        volumes.append(TopicVolume(
            topic=t.name,
            records_per_day=max(last_day, sampled),
            fan_out=max(1, len(reading.get(t.name, []))),
            measured_by=measured_by,
        ))
    return VolumeEstimate(
        topics=tuple(volumes),
        sampled=any(t.records_per_second is not None for t in inv.topics),
    )
