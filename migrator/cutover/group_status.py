"""What `migrator cutover status` reports for one replaced group: its cutover state, the old
group and the bridge group as Kafka sees them, per partition, and what QStash did since the
hand-off."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from migrator.cutover.fence import GroupSnapshot
from migrator.cutover.outcome import QStashCounts
from migrator.cutover.state import GroupCutover, State

__all__ = ["GroupStatus", "PartitionStatus"]


@dataclass(frozen=True)
class PartitionStatus:
    topic: str
    partition: int
    end: int
    old_committed: int | None
    bridge_committed: int | None
    handoff: int | None

    @property
    def old_lag(self) -> int | None:
        return None if self.old_committed is None else max(0, self.end - self.old_committed)

    @property
    def bridge_lag(self) -> int | None:
        return None if self.bridge_committed is None else max(0, self.end - self.bridge_committed)


@dataclass(frozen=True)
class GroupStatus:
    cutover: GroupCutover
    old: GroupSnapshot
    bridge: GroupSnapshot
    partitions: tuple[PartitionStatus, ...] = field(default_factory=tuple)
    qstash: QStashCounts | None = None
    qstash_error: str | None = None  # why the QStash counts are missing (QStash unreachable)

    @property
    def next_commands(self) -> list[str]:
        return [f"migrator cutover {step} {self.cutover.group}" for step in self.cutover.next_steps()]

    def to_json(self) -> dict[str, Any]:
        def lag(values: list[int | None]) -> int | None:
            known = [v for v in values if v is not None]
            return sum(known) if known else None

        c = self.cutover
        return {
            "group": c.group,
            "state": c.state.value,
            "since": c.at or None,
            "note": c.note,
            "old_group": {"state": self.old.state, "members": len(self.old.members),
                          "lag": lag([p.old_lag for p in self.partitions])},
            "bridge_group": {"name": c.bridge_group, "state": self.bridge.state,
                             "members": len(self.bridge.members),
                             "lag": lag([p.bridge_lag for p in self.partitions])},
            # records the bridge handled (accepted by QStash / a 2xx) since the hand-off, by
            # its commits
            "delivered_since_handoff": (
                sum(max(0, p.bridge_committed - p.handoff) for p in self.partitions
                    if p.bridge_committed is not None and p.handoff is not None)
                if c.state in (State.SWITCHED, State.ROLLING_BACK) else None),
            # what QStash did with them: delivered, still held, failed into the DLQ
            "qstash_since_handoff": self.qstash.to_json() if self.qstash else None,
            "qstash_error": self.qstash_error,
            "handoff_at": c.handoff_at,
            "handoff": [p.model_dump() for p in c.handoff],
            "rollback_at": c.rollback_at,
            "rollback": [p.model_dump() for p in c.rollback],
            "skip": [{"topic": s.topic, "partition": s.partition,
                      "ranges": [list(r) for r in s.ranges]} for s in c.skip],
            "partitions": [{"topic": p.topic, "partition": p.partition, "end": p.end,
                            "old_committed": p.old_committed, "old_lag": p.old_lag,
                            "bridge_committed": p.bridge_committed, "bridge_lag": p.bridge_lag,
                            "handoff": p.handoff} for p in self.partitions],
            "next": self.next_commands,
        }
