"""Collect messages into batches by count, bytes and linger (a :class:`BatchPolicy`).

One open batch per key; the runner's key is ``(destination index, partition)`` in ordered mode
and ``(destination index, None)`` in unordered mode. :meth:`Batcher.add` returns a batch the
moment it is full; :meth:`Batcher.due` returns those whose linger elapsed; :meth:`Batcher.flush`
returns everything (or one partition's) for shutdown and revocation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from connectors.sink import Message
from migrator.bridge.config import BatchPolicy

__all__ = ["Batch", "Batcher"]


@dataclass(slots=True)
class Batch:
    """Messages bound for one destination, sent in one request (or one sequence of requests)."""

    key: tuple[int, tuple[str, int] | None]
    messages: list[Message] = field(default_factory=list)
    size: int = 0
    opened: float = 0.0
    not_before: float = 0.0  # retries wait until then

    @property
    def destination(self) -> int:
        return self.key[0]


class Batcher:
    """Open batches per key. Not thread-safe: used by the runner's loop only."""

    def __init__(
        self,
        policy: BatchPolicy,
        clock: Callable[[], float] = time.monotonic,
        *,
        counts: Sequence[int] = (),
    ) -> None:
        """``counts[i]``: the batch size of destination ``i`` (else ``policy.count``, or the
        QStash default when that is unset)."""
        self.policy = policy
        self._counts = list(counts)
        self._default_count = policy.count_for(direct=False)
        self._linger = policy.linger_ms / 1000.0
        self._open: dict[Hashable, Batch] = {}
        self._clock = clock

    def add(self, key: tuple[int, tuple[str, int] | None], message: Message) -> Batch | None:
        """Add ``message``; the batch if this filled it (by count or bytes), else None."""
        batch = self._open.get(key)
        size = message.size
        if batch is not None and batch.messages and batch.size + size > self.policy.bytes:
            full = self._open.pop(key)
            self._open[key] = Batch(key, [message], size, self._clock())
            return full
        if batch is None:
            batch = self._open[key] = Batch(key, [], 0, self._clock())
        batch.messages.append(message)
        batch.size += size
        dest = key[0]
        count = self._counts[dest] if dest < len(self._counts) else self._default_count
        if len(batch.messages) >= count or batch.size >= self.policy.bytes:
            return self._open.pop(key)
        return None

    def due(self) -> list[Batch]:
        """Batches whose linger has elapsed."""
        if not self._open:
            return []
        limit = self._clock() - self._linger
        ready = [k for k, b in self._open.items() if b.opened <= limit]
        return [self._open.pop(k) for k in ready]

    def next_due(self) -> float | None:
        """Clock time when the oldest open batch is due, or None."""
        if not self._open:
            return None
        return min(b.opened for b in self._open.values()) + self._linger

    def flush(self, partition: tuple[str, int] | None = None) -> list[Batch]:
        """Close and return all open batches, or only those holding ``partition``'s records."""
        if partition is None:
            out = list(self._open.values())
            self._open.clear()
            return out
        keys = [
            k
            for k, b in self._open.items()
            if any((m.record.topic, m.record.partition) == partition for m in b.messages)
        ]
        return [self._open.pop(k) for k in keys]

    def drop(self, partition: tuple[str, int]) -> list[Message]:
        """Remove ``partition``'s messages from open batches (revoked); return them."""
        dropped: list[Message] = []
        for key in list(self._open):
            batch = self._open[key]
            keep: list[Message] = []
            gone: list[Message] = []
            for m in batch.messages:
                (gone if (m.record.topic, m.record.partition) == partition else keep).append(m)
            if gone:
                dropped.extend(gone)
                if keep:
                    batch.messages = keep
                    batch.size = sum(m.size for m in keep)
                else:
                    del self._open[key]
        return dropped

    def __len__(self) -> int:
        return sum(len(b.messages) for b in self._open.values())
