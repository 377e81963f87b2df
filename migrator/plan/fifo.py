"""FIFO queues of ordered routes: their names, the plan's queue budget shared out among the
routes, and the rate the queues deliver (ORDERED_CAPACITY where it falls short)."""

from __future__ import annotations

import heapq
import math
import re
from dataclasses import dataclass

from migrator.plan.spec import Blocker, RouteSpec
from migrator.qstash_tiers import TierLimits

__all__ = ["FifoRoute", "queue_base", "queue_counts", "queue_names", "safe_name", "with_queues"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(value: str) -> str:
    return _SAFE.sub("-", value)


@dataclass(frozen=True)
class FifoRoute:
    """An ordered route going through FIFO queues, before the queue budget is shared out."""

    partitions: int
    rps: float
    latency_ms: dict[str, float]  # strict group -> its endpoint's round trip
    why: str

    @property
    def groups(self) -> int:
        return len(self.latency_ms)

    def busiest(self, queues: int) -> tuple[float, int]:
        """(share of the busiest queue's time its endpoint is busy, partitions on it)."""
        per_queue = math.ceil(self.partitions / queues)
        slowest = max(self.latency_ms.values()) / 1000
        return self.rps / self.partitions * per_queue * slowest, per_queue

    def capacity(self, queues: int, group: str) -> float:
        """Records/s ``group``'s queues deliver, partitions evenly loaded."""
        per_queue = math.ceil(self.partitions / queues)
        return self.partitions / (per_queue * self.latency_ms[group] / 1000)


def queue_counts(routes: dict[str, FifoRoute], max_queues: int) -> dict[str, int]:
    """Queues per group for each FIFO route, within the plan's queue budget.

    Every route starts with one queue per group; the rest of the budget goes, a step at a
    time, to the route whose busiest queue is busiest, each step the fewest queues that put
    fewer partitions on that queue (never more queues than partitions). With budget enough,
    every partition has its own queue. Fewer queues than routes x groups is left to the plan
    fit (PLAN_LIMIT).
    """
    counts = {t: 1 for t in routes}
    left = max_queues - sum(f.groups for f in routes.values())
    heap: list[tuple[float, int, str]] = []

    def push(topic: str) -> None:
        load, per_queue = routes[topic].busiest(counts[topic])
        if per_queue > 1:
            heapq.heappush(heap, (-load, -per_queue, topic))

    for topic in routes:
        push(topic)
    while heap and left > 0:
        _, neg_per_queue, topic = heapq.heappop(heap)
        fifo = routes[topic]
        more = math.ceil(fifo.partitions / (-neg_per_queue - 1))
        cost = (more - counts[topic]) * fifo.groups
        if cost > left:
            continue
        counts[topic] = more
        left -= cost
        push(topic)
    return counts


def with_queues(route: RouteSpec, fifo: FifoRoute, queues: int, limits: TierLimits
                ) -> tuple[RouteSpec, list[Blocker]]:
    """The route with its queue count, capacity and reason; ORDERED_CAPACITY blockers where due."""
    assert route.ordering is not None
    capacity = {g: fifo.capacity(queues, g) for g in fifo.latency_ms}
    p = fifo.partitions
    per_group = ", per group" if fifo.groups > 1 else ""
    shared = (f"; partitions share queues: the {limits.name} plan allows "
              f"{limits.max_queues} queues" if queues < p else "")
    slowest = min(capacity, key=lambda g: capacity[g])
    observed = (f"{fifo.rps:g} rec/s observed" if fifo.rps else "no rate observed")
    reason = (f"{fifo.why}: FIFO queues with parallelism 1, each partition to one queue "
              f"({queues} queue{'s' if queues > 1 else ''} for {p} partition"
              f"{'s' if p > 1 else ''}{per_group}{shared}); about "
              f"{capacity[slowest]:,.0f} rec/s at {fifo.latency_ms[slowest]:g} ms per endpoint "
              f"round trip, {observed}")
    if route.ordering.best_effort:
        reason += (f"; best effort for {', '.join(route.ordering.best_effort)} (a flow-control "
                   "key, parallelism 1): order can break on a retry")
    blockers = [_capacity_blocker(route.topic, group, fifo, queues, cap, limits)
                for group, cap in capacity.items() if fifo.rps > cap]
    ordering = route.ordering.model_copy(update={"queues": queues, "capacity": {
        g: round(c, 1) for g, c in capacity.items()}})
    return route.model_copy(update={"ordering": ordering, "reason": reason}), blockers


def _capacity_blocker(
    topic: str, group: str, fifo: FifoRoute, queues: int, capacity: float, limits: TierLimits
) -> Blocker:
    p, latency = fifo.partitions, fifo.latency_ms[group]
    per_queue = math.ceil(p / queues)
    remedies = []
    if queues < p:
        more = ("choose a larger --qstash-plan or fewer ordered routes"
                if limits.name != "fixed" else "fewer ordered routes")
        remedies.append(f"more queues, up to {p} (one per partition; the {limits.name} "
                        f"plan's {limits.max_queues} are shared out: {more})")
    needed_ms = p / (per_queue * fifo.rps) * 1000
    remedies.append(f"a faster endpoint (at most {needed_ms:,.0f} ms per round trip with "
                    f"{queues} queue{'s' if queues > 1 else ''}; give the measured figure as "
                    f"latency_ms: {group} in the endpoint file)")
    remedies.append(f"or accept the weaker guarantee explicitly: `ordering: {group}: "
                    "best_effort` in the endpoint file (a flow-control key; order can break "
                    "on a retry)")
    return Blocker(
        code="ORDERED_CAPACITY", object=f"topic:{topic}",
        message=f"group {group}: {fifo.rps:g} rec/s must arrive in order, but its {queues} "
        f"FIFO queue{'s' if queues > 1 else ''} (parallelism 1: one message per endpoint "
        f"round trip each) deliver about {capacity:,.0f} rec/s at {latency:g} ms",
        remedy="; ".join(remedies),
    )


def queue_base(route: RouteSpec, group: str) -> str | None:
    """The base name of ``group``'s FIFO queues on ``route`` (None: it has none); partition p
    goes to ``<base>-<p mod queues>``."""
    o = route.ordering
    plain = [t for t in route.targets if not t.workflow]
    if (o is None or o.mode != "fifo_queue" or not o.queue or not o.queues
            or group in o.best_effort or group not in {t.group for t in plain}):
        return None
    return o.queue if len(plain) == 1 else f"{o.queue}.{safe_name(group)}"


def queue_names(route: RouteSpec) -> list[str]:
    """Every FIFO queue of an ordered route: ``queues`` per strict group."""
    count = route.ordering.queues if route.ordering is not None else None
    bases = [queue_base(route, t.group) for t in route.targets]
    return [f"{b}-{i}" for b in bases if b is not None for i in range(count or 0)]
