"""In-flight accounting and pausing: how much the bridge holds, and which partitions it stops
reading.

:class:`InFlight` counts the messages (and their bytes) polled and not yet settled; every
piece of the bridge that takes or settles messages adds to or subtracts from the one instance.
:class:`Backpressure` decides, once per loop pass, which assigned partitions are paused:

* all of them once the in-flight limit held for ``PAUSE_AFTER`` seconds (the destination is
  slow or down: the loop keeps polling, so group membership and rebalance callbacks stay
  served, but takes nothing), until half the limit is free again;
* an ordered partition whose batches queue up behind its one in-flight batch;
* a partition *held*: sought back to a record that could not be decoded for a reason that is
  not its own (the Schema Registry is unavailable), until its backoff elapsed;
* (a clear place for other reasons to hold partitions back, such as a per-group cutover gate:
  add them to :meth:`Backpressure.update`'s ``want``).

Nothing here sleeps or reads a clock of its own: callers pass ``now``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from migrator.bridge.config import InFlightLimits
from migrator.bridge.metrics import GroupMetrics
from migrator.bridge.retry import Backoff
from migrator.errors import RetryableDeliveryError

__all__ = ["PAUSE_AFTER", "Backpressure", "InFlight", "PartitionControl", "Throttle"]

log = logging.getLogger(__name__)

Partition = tuple[str, int]
PAUSE_AFTER = 1.0  # seconds at the in-flight limit before partitions are paused
CROWDED_AT = 4  # batches waiting behind an ordered partition's in-flight one: pause it


class PartitionControl(Protocol):
    """What pausing needs of the consumer (:class:`migrator.kafka.consumer.KafkaConsumer`)."""

    def pause(self, partitions: Iterable[Partition]) -> None: ...

    def resume(self, partitions: Iterable[Partition]) -> None: ...

    def seek(self, partition: Partition, offset: int) -> None: ...


class InFlight:
    """Messages (one per record and destination) polled and not settled, and their bytes."""

    __slots__ = ("bytes", "records")

    def __init__(self) -> None:
        self.records = 0
        self.bytes = 0

    def done(self, size: int) -> None:
        """One message settled (delivered elsewhere, dropped, not owned any more)."""
        self.records -= 1
        self.bytes -= size


class Throttle:
    """At most one event per ``interval`` seconds (for repeated warnings)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = float("-inf")

    def ready(self, now: float) -> bool:
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False


class Backpressure:
    """Which partitions are paused, and why. Not thread-safe: the loop's."""

    def __init__(
        self,
        consumer: PartitionControl,
        limits: InFlightLimits,
        flow: InFlight,
        backoff: Backoff,
        *,
        metrics: GroupMetrics,
        throttle: Throttle,
    ) -> None:
        self._consumer = consumer
        self._limits = limits
        self._flow = flow
        self._backoff = backoff
        self._hold_window = 2 * backoff.policy.max_backoff
        self._metrics = metrics
        self._throttle = throttle
        self.paused: set[Partition] = set()
        # partitions held back (sought back to an undecoded record) until a monotonic time,
        # with the count of holds in a row: their schema registry is unavailable
        self.held: dict[Partition, float] = {}
        self._holds: dict[Partition, tuple[int, float]] = {}
        self.full_since: float | None = None  # when the in-flight limit was reached
        self.stalled = False  # the limit held for PAUSE_AFTER: every partition is paused

    def at_limit(self, now: float) -> bool:
        """Whether the in-flight limit is reached (noting since when)."""
        flow, limits = self._flow, self._limits
        if flow.records >= limits.records or flow.bytes >= limits.bytes:
            if self.full_since is None:
                self.full_since = now
            return True
        self.full_since = None
        return False

    def update(
        self, now: float, assigned: set[Partition], crowded: Iterable[Partition] = ()
    ) -> None:
        """Pause and resume so that exactly the partitions that should wait are paused;
        ``crowded``: ordered partitions with batches queued behind their in-flight one."""
        limits, flow = self._limits, self._flow
        if self.full_since is not None and now - self.full_since >= PAUSE_AFTER:
            self.stalled = True
        elif self.stalled and (
            flow.records <= limits.records // 2 and flow.bytes <= limits.bytes // 2
        ):
            self.stalled = False
        want: set[Partition] = set(assigned) if self.stalled else set()
        if self.held:
            for tp in [tp for tp, until in self.held.items() if until <= now]:
                del self.held[tp]
            want.update(self.held)
        want.update(crowded)
        want &= assigned
        if want != self.paused:
            self._consumer.pause(want - self.paused)
            self._consumer.resume(self.paused - want)
            self.paused = want
            self._metrics.paused.set(len(self.paused))

    def hold(self, tp: Partition, offset: int, error: RetryableDeliveryError, now: float) -> None:
        """Read ``tp`` again from ``offset`` after a backoff, instead of dead-letter a record
        that could not be decoded for a reason that is not its own (registry unavailable)."""
        count, last = self._holds.get(tp, (0, float("-inf")))
        count = count + 1 if now - last < self._hold_window else 1
        wait = self._backoff.wait(count)
        self._holds[tp] = (count, now)
        self.held[tp] = now + wait
        self._consumer.pause([tp])
        self.paused.add(tp)
        self._consumer.seek(tp, offset)
        if self._throttle.ready(now):
            log.warning('holding partition="%s[%d]" at offset %d for %.1fs: %s', tp[0], tp[1],
                        offset, wait, error)

    def forget(self, tp: Partition) -> None:
        """``tp`` is no longer ours: drop its pause and hold state."""
        self.paused.discard(tp)
        self.held.pop(tp, None)
        self._holds.pop(tp, None)
