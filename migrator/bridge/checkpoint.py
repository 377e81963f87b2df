"""Per-partition offset bookkeeping: commit only what was delivered, in order.

Each polled record is *tracked* with the number of outcomes it waits for (one per destination).
An outcome (delivered, skipped or dead-lettered) *acks* it once. :meth:`Checkpointer.committable`
returns, per partition, the offset after the highest record whose predecessors are all acked:
the only offset that may be committed. Offsets must increase strictly per partition; a revoked
partition is forgotten and never offered for commit again, even when late acks arrive.
(The shape of Jeffail/checkpoint and quix-streams' ``InvalidStoredOffset``.)
"""

from __future__ import annotations

__all__ = ["Checkpointer", "PartitionCheckpoint"]

Partition = tuple[str, int]


class PartitionCheckpoint:
    """Tracked offsets of one partition that still await outcomes.

    ``_pending`` maps offset -> outcomes still awaited, in tracking (= offset) order, and
    forgets an offset once all its outcomes arrived; so the offset to commit is the first key
    left (or the one after the last tracked, when none is left). Acks cost one dict update;
    the first key is looked up only when committing.
    """

    __slots__ = ("_pending", "committed", "first_tracked", "last_tracked")

    def __init__(self) -> None:
        self._pending: dict[int, int] = {}
        self.first_tracked: int | None = None
        self.last_tracked = -1
        self.committed: int | None = None

    def track(self, offset: int, outcomes: int = 1) -> None:
        if offset <= self.last_tracked:
            raise ValueError(
                f"offset {offset} is not above the last tracked offset {self.last_tracked}"
            )
        self._pending[offset] = outcomes
        self.last_tracked = offset
        if self.first_tracked is None:
            self.first_tracked = offset

    def ack(self, offset: int) -> None:
        left = self._pending.get(offset)
        if not left:
            raise ValueError(f"offset {offset} was not tracked or is already acknowledged")
        if left == 1:
            del self._pending[offset]
        else:
            self._pending[offset] = left - 1

    @property
    def pending(self) -> int:
        """Records tracked but not yet fully acknowledged."""
        return len(self._pending)

    def to_commit(self) -> int | None:
        """The offset to commit (the next one to read), when it moved past the last commit."""
        if self.first_tracked is None:
            return None
        released = next(iter(self._pending), self.last_tracked + 1)
        if released <= self.first_tracked or released == self.committed:
            return None
        return released


class Checkpointer:
    """All owned partitions. Not thread-safe: the bridge's loop thread is its only caller
    (delivery results and dead-letter acknowledgements are settled on that thread)."""

    def __init__(self) -> None:
        self._parts: dict[Partition, PartitionCheckpoint] = {}
        self.live: set[PartitionCheckpoint] = set()
        """The tickets of the current assignment: a message whose ticket is in here may be
        acknowledged on it directly (``ticket.ack(offset)``), the hot path of :meth:`ack`."""

    def assign(self, partition: Partition) -> None:
        if partition not in self._parts:
            part = self._parts[partition] = PartitionCheckpoint()
            self.live.add(part)

    def revoke(self, partition: Partition) -> None:
        """Forget ``partition``: its later acks are ignored and it is never committed again."""
        part = self._parts.pop(partition, None)
        if part is not None:
            self.live.discard(part)

    def ticket(self, partition: Partition) -> PartitionCheckpoint | None:
        """The current assignment's ticket for ``partition`` (None: not owned)."""
        return self._parts.get(partition)

    def owns(self, partition: Partition, ticket: object = None) -> bool:
        """Whether ``partition`` is owned (and, given a ticket, still by that assignment)."""
        part = self._parts.get(partition)
        return part is not None and (ticket is None or part is ticket)

    def last_tracked(self, partition: Partition) -> int:
        """The highest offset tracked for ``partition`` in this assignment (-1: none)."""
        part = self._parts.get(partition)
        return -1 if part is None else part.last_tracked

    def track(self, partition: Partition, offset: int, outcomes: int = 1) -> PartitionCheckpoint:
        """Track a record; returns the ticket its acks must present."""
        part = self._parts[partition]
        part.track(offset, outcomes)
        return part

    def ack(self, partition: Partition, offset: int, ticket: object) -> bool:
        """Record one outcome; False (ignored) when the partition was revoked since tracking,
        even if it was assigned again meanwhile (the ticket then differs)."""
        part = self._parts.get(partition)
        if part is None or part is not ticket:
            return False
        part.ack(offset)
        return True

    def pending(self, partition: Partition) -> int:
        part = self._parts.get(partition)
        return 0 if part is None else part.pending

    def committable(self, partitions: set[Partition] | None = None) -> dict[Partition, int]:
        """Offsets to commit now (next offset to read), for owned partitions that advanced."""
        out = {}
        for tp, part in self._parts.items():
            if partitions is not None and tp not in partitions:
                continue
            offset = part.to_commit()
            if offset is not None:
                out[tp] = offset
        return out

    def committed(self, offsets: dict[Partition, int]) -> None:
        """Note a successful commit of ``offsets``."""
        for tp, offset in offsets.items():
            part = self._parts.get(tp)
            if part is not None:
                part.committed = offset

    def snapshot(self) -> dict[Partition, tuple[int | None, int]]:
        """(committed offset, pending records) per owned partition: for status and metrics."""
        return {tp: (p.committed, p.pending) for tp, p in self._parts.items()}
