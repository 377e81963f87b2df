"""The cutover state of one replaced consumer group, and the moves between states.

::

    old ──prepare──▶ prepared ──shadow──▶ shadow
                        │  ▲                │
                        │  └──prepare───────┘
                      switch (fence, hand-off)  ◀──────────┘ (switch from shadow too)
                        ▼
                    switching ──▶ switched ──rollback──▶ rolling_back ──▶ rolled_back ──prepare──▶ prepared

``switching`` and ``rolling_back`` are written *before* their step changes anything in Kafka
and carry what the step decided (hand-off offsets, rollback offsets), so a rerun after a crash
finishes the same step. Bridges deliver a group's records live only while it is ``switched``
(and, marked as shadow, while it is ``shadow``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from migrator.errors import IllegalTransitionError

__all__ = [
    "HISTORY_LIMIT",
    "SCHEMA_VERSION",
    "GroupCutover",
    "HistoryEntry",
    "PartitionOffset",
    "PartitionSkip",
    "State",
    "Step",
    "check_step",
    "now_iso",
]

SCHEMA_VERSION = 1
HISTORY_LIMIT = 100


class State(StrEnum):
    OLD = "old"
    PREPARED = "prepared"
    SHADOW = "shadow"
    SWITCHING = "switching"
    SWITCHED = "switched"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"


Step = Literal["prepare", "shadow", "switch", "rollback"]

# the states each command may start from (a rerun of an interrupted step included)
ALLOWED_FROM: dict[str, frozenset[State]] = {
    "prepare": frozenset({State.OLD, State.PREPARED, State.SHADOW, State.ROLLED_BACK}),
    "shadow": frozenset({State.PREPARED, State.SHADOW}),
    # a switch of a switched group (or a rollback of a rolled-back one) changes nothing: the
    # rerun of a step whose first run was killed right after finishing
    "switch": frozenset({State.PREPARED, State.SHADOW, State.SWITCHING, State.SWITCHED}),
    "rollback": frozenset({State.SWITCHED, State.ROLLING_BACK, State.ROLLED_BACK}),
}
NEXT_STEPS: dict[State, tuple[Step, ...]] = {
    State.OLD: ("prepare",),
    State.PREPARED: ("switch", "shadow"),
    State.SHADOW: ("switch", "prepare"),
    State.SWITCHING: ("switch",),  # a rerun finishes the interrupted hand-off
    State.SWITCHED: ("rollback",),
    State.ROLLING_BACK: ("rollback",),  # a rerun finishes the interrupted rollback
    State.ROLLED_BACK: ("prepare",),
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_step(group: str, current: State, step: Step) -> None:
    """Raise :class:`IllegalTransitionError` unless ``step`` may start from ``current``."""
    if current in ALLOWED_FROM[step]:
        return
    allowed = " or ".join(f"`migrator cutover {s} {group}`" for s in NEXT_STEPS[current])
    raise IllegalTransitionError(
        f"group {group!r} is {current.value}: `{step}` is not allowed from there; next: {allowed}."
    )


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PartitionOffset(_Frozen):
    """An offset (the next record to read) on one partition, where it came from, and when."""

    topic: str
    partition: int
    offset: int
    at: str
    source: str = Field(description="committed | earliest | override | bridge-committed | "
                        "cancelled | delivered | handoff")


class PartitionSkip(_Frozen):
    """Records above a partition's rollback offset that the endpoint already processed (QStash
    delivered an unordered route's messages in parallel): the old consumers must skip them."""

    topic: str
    partition: int
    ranges: tuple[tuple[int, int], ...] = Field(description="inclusive (first, last) offset runs")

    def offsets(self) -> list[int]:
        return [o for first, last in self.ranges for o in range(first, last + 1)]


class HistoryEntry(_Frozen):
    state: State
    at: str
    note: str = ""


class GroupCutover(_Frozen):
    """The document kept per replaced group (key: the group name) in the cutover topic."""

    version: int = SCHEMA_VERSION
    group: str
    state: State = State.OLD
    seq: int = 0
    at: str = ""
    bridge_group: str
    topics: tuple[str, ...] = ()
    handoff: tuple[PartitionOffset, ...] = ()
    handoff_at: str | None = None
    rollback: tuple[PartitionOffset, ...] = ()
    rollback_at: str | None = None
    cancelled: int | None = None  # QStash messages cancelled by the last rollback
    skip: tuple[PartitionSkip, ...] = Field(default=(), description="The last rollback's skip "
                                            "list: offsets above the rollback offsets that the "
                                            "endpoint already processed.")
    switches: int = Field(default=0, description="Hand-offs recorded so far: each switch delivers with "
                          "dedup ids of its own, so a record cancelled by a rollback is "
                          "delivered again by a later switch instead of being deduplicated.")
    note: str = ""
    history: tuple[HistoryEntry, ...] = ()

    def moved(self, state: State, note: str = "", **changes: Any) -> GroupCutover:
        """The next version: ``state`` now, one more history entry, ``changes`` applied."""
        at = now_iso()
        history = (*self.history, HistoryEntry(state=state, at=at, note=note))[-HISTORY_LIMIT:]
        return self.model_copy(update={
            "state": state, "seq": self.seq + 1, "at": at, "note": note, "history": history,
            **changes,
        })

    def handoff_map(self) -> dict[tuple[str, int], int]:
        return {(p.topic, p.partition): p.offset for p in self.handoff}

    def rollback_map(self) -> dict[tuple[str, int], int]:
        return {(p.topic, p.partition): p.offset for p in self.rollback}

    def skip_map(self) -> dict[tuple[str, int], list[int]]:
        return {(s.topic, s.partition): s.offsets() for s in self.skip}

    def next_steps(self) -> tuple[Step, ...]:
        return NEXT_STEPS[self.state]
