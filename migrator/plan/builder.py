"""Inventory -> Plan: for each topic and consumer group, the QStash pattern and a one-line reason.

Rules (docs/plan.md explains each):

* one group -> publish to its endpoint; several groups -> a URL group, one endpoint per group;
* ordering needed (keyed records read by a group, or the audit's ORDERING_SENSITIVE) -> FIFO
  queues with parallelism 1, each partition to exactly one queue (so every record of a key goes
  to one queue), one set per group; partitions share queues when the plan's queue budget is
  short. Capacity is about queues / endpoint round trip: ``ORDERED_CAPACITY`` when the observed
  rate is more. A flow-control key with parallelism 1 (order breaks on a retry) only for groups
  the endpoint file marks ``ordering: best_effort``, and for workflows (a warning says so);
* a Kafka Streams application (its changelog/repartition topics exist) -> an Upstash Workflow;
* compacted, Streams-internal or too-large topics -> ``blocked`` with a blocker and a remedy
  (its severity is the audit's: :mod:`migrator.finding_codes`);
  retry and dead-letter topics -> ``absorbed`` (QStash retries / DLQ); nothing is dropped.

What a topic is (internal, Streams internal, retry, dead-letter, data) and who reads it come from
:mod:`migrator.topic_roles`, the rules the audit uses too.
"""

from __future__ import annotations

import heapq
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from migrator import __version__
from migrator.finding_codes import plan_severity
from migrator.inventory import ConnectorInfo, ConsumerGroupInfo, Inventory, TopicInfo
from migrator.plan.cost import PriceTable, estimate
from migrator.plan.endpoints import EndpointMap
from migrator.plan.limits import fit
from migrator.plan.spec import (
    Blocker,
    GroupTarget,
    OrderingSpec,
    Pattern,
    Plan,
    QueueSpec,
    Resources,
    ReviewedState,
    RouteSpec,
    ScheduleSpec,
    SourceInfo,
    UrlGroupEndpointSpec,
    UrlGroupSpec,
)
from migrator.qstash_tiers import TIERS, TierLimits, TierName
from migrator.topic_roles import TopicClass, classify, readers, streams_applications

__all__ = ["PlanOptions", "build_plan", "queue_base", "queue_names", "safe_name"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class PlanOptions:
    """Knobs of the planner (defaults documented in docs/plan.md)."""

    qstash_tier: TierName = "payg"
    prefix: str = ""
    headroom: float = 2.0
    """Flow-control rate = observed records/s x headroom."""
    prices: PriceTable = field(default_factory=lambda: PriceTable())
    inventory_path: str | None = None


@dataclass(frozen=True)
class _Fifo:
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


@dataclass
class _Aux:
    """Retry and dead-letter topics found for a base topic."""

    retry_topics: list[tuple[str, int | None]] = field(default_factory=list)
    dlq_topics: list[str] = field(default_factory=list)
    connectors: list[ConnectorInfo] = field(default_factory=list)


def build_plan(
    inventory: Inventory,
    endpoints: EndpointMap,
    options: PlanOptions | None = None,
    reviewed_state: ReviewedState | None = None,
) -> Plan:
    """The plan for ``inventory`` with ``endpoints`` mapped; pure, no I/O."""
    opts = options or PlanOptions()
    limits = TIERS[opts.qstash_tier]
    planner = _Planner(inventory, endpoints, opts, limits)
    routes = planner.routes()
    resources = planner.resources(routes)
    cost = estimate(inventory, routes, opts.qstash_tier, opts.prices)
    blockers = (planner.blockers + _unavailable_sources(inventory)
                + fit(limits, routes, resources, cost.messages_per_day))
    return Plan(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        tool_version=__version__,
        qstash_plan=opts.qstash_tier,
        prefix=opts.prefix,
        source=SourceInfo(
            cluster_id=inventory.cluster.cluster_id,
            bootstrap_servers=inventory.cluster.bootstrap_servers,
            inventory=opts.inventory_path,
            inventory_generated_at=inventory.generated_at,
            schema_registry_url=inventory.schema_registry.url,
        ),
        routes=routes,
        resources=resources,
        blockers=blockers,
        cost=cost,
        reviewed_state=reviewed_state,
    )


_MISSING = {
    "schema-registry": "schemas, so no decoding or typed scaffolds where records are framed",
    "connect": "connectors, so no schedules for source connectors and no retry settings "
               "from sink connectors",
}


def _unavailable_sources(inventory: Inventory) -> list[Blocker]:
    """The audit could not read the registry or Connect: the plan says what it therefore lacks."""
    return [
        Blocker(
            code="SOURCE_UNAVAILABLE", severity="warning", object=f.object,
            message=f"{f.message}; this plan lacks its "
            f"{_MISSING.get(f.object, 'data')}",
            remedy="make the source reachable, re-run `migrator audit`, then `migrator plan`",
        )
        for f in inventory.findings if f.code == "SOURCE_UNAVAILABLE"
    ]


def safe_name(value: str) -> str:
    return _SAFE.sub("-", value)


class _Planner:
    def __init__(
        self, inv: Inventory, endpoints: EndpointMap, opts: PlanOptions, limits: TierLimits
    ) -> None:
        self.inv, self.endpoints, self.opts, self.limits = inv, endpoints, opts, limits
        self.blockers: list[Blocker] = []
        self.broker_max_message_bytes = 0
        """The largest broker- or cluster-wide max.message.bytes seen (one warning, not one per
        topic; Kafka's own default, 1,048,588, counts batch overhead and is never flagged)."""
        self.fifo: dict[str, _Fifo] = {}
        names = {t.name for t in inv.topics}
        self.classes = classify(inv)
        self.aux = _auxiliary(inv, self.classes)
        self.streams_apps = streams_applications({g.group_id for g in inv.consumer_groups}, names)
        self.readers = readers(inv)
        self.ordering_findings = {
            f.object for f in inv.findings if f.code == "ORDERING_SENSITIVE"
        }

    # ----------------------------------------------------------------------------------- routes
    def routes(self) -> list[RouteSpec]:
        routes = [self._route(topic) for topic in sorted(self.inv.topics, key=lambda t: t.name)]
        counts = self._queue_counts()
        routes = [self._queues(r, counts[r.topic]) if r.topic in counts else r for r in routes]
        if self.broker_max_message_bytes > self.limits.max_message_bytes:
            self.blockers.append(Blocker(
                code="RECORD_TOO_LARGE", severity="warning", object="cluster",
                message=f"the brokers' message.max.bytes={self.broker_max_message_bytes:,} "
                f"allows records above the {self.limits.name} plan's "
                f"{self.limits.max_message_bytes:,} bytes on every topic without an override",
                remedy="make sure producers stay under the QStash limit; larger records "
                "will be dead-lettered by the bridge",
            ))
        return routes

    def _groups(self, topic: str) -> list[ConsumerGroupInfo]:
        return self.readers.get(topic, [])

    def _route(self, topic: TopicInfo) -> RouteSpec:
        name = topic.name
        groups = self._groups(name)
        role = self.classes[name]
        if role.role == "internal":
            return RouteSpec(topic=name, pattern="internal",
                             reason="Kafka/Connect/registry infrastructure; nothing to migrate")
        if role.role in ("retry", "dead-letter"):
            what = "QStash retries" if role.role == "retry" \
                else "QStash's DLQ and the failure callback"
            of = f" of {role.serves!r}" if role.serves else ""
            return RouteSpec(topic=name, pattern="absorbed",
                             reason=f"{role.role} topic{of}: replaced by {what}")
        blocked = self._blocked(topic)
        if blocked is not None:
            return blocked
        if not groups:
            return RouteSpec(topic=name, pattern="unconsumed",
                             reason="no consumer group reads it; nothing to route yet",
                             records_per_second=topic.records_per_second)
        return self._consumed(topic, groups)

    def _blocked(self, topic: TopicInfo) -> RouteSpec | None:
        name = topic.name
        cleanup = topic.config("cleanup.policy") or "delete"
        size_max = topic.sample.size_max if topic.sample else 0
        if self.classes[name].role == "streams-internal":
            code, why, remedy = (
                "STREAMS_INTERNAL_TOPIC",
                "Kafka Streams internal topic (state store changelog or repartition)",
                "the application's state moves into its Upstash Workflow steps or a database; "
                "nothing to migrate",
            )
        elif "compact" in cleanup:
            code, why, remedy = (
                "COMPACTED_TOPIC",
                f"compacted topic (cleanup.policy={cleanup}); QStash keeps no latest-value-per-key "
                "log and cannot replay",
                "keep the latest value per key in a database the endpoint updates; publish "
                "changes as messages",
            )
        elif size_max > self.limits.max_message_bytes:
            code, why, remedy = (
                "RECORD_TOO_LARGE",
                f"records up to {size_max:,} bytes; the {self.limits.name} plan allows "
                f"{self.limits.max_message_bytes:,}",
                "store large payloads in object storage and send a reference (claim check), "
                "or choose a plan with a larger message size",
            )
        else:
            conf = topic.configs.get("max.message.bytes")
            configured = _int(conf.value) if conf is not None else None
            if conf is not None and conf.source not in ("default", "topic"):
                self.broker_max_message_bytes = max(self.broker_max_message_bytes, configured or 0)
                configured = None
            if configured is not None and conf is not None and conf.source == "topic" \
                    and configured > self.limits.max_message_bytes:
                self.blockers.append(Blocker(
                    code="RECORD_TOO_LARGE", severity="warning", object=f"topic:{name}",
                    message=f"max.message.bytes={configured:,} allows records above the "
                    f"{self.limits.name} plan's {self.limits.max_message_bytes:,} bytes "
                    f"(largest seen: {size_max:,})",
                    remedy="make sure producers stay under the QStash limit; larger records "
                    "will be dead-lettered by the bridge",
                ))
            return None
        self.blockers.append(Blocker(code=code, severity=plan_severity(code),
                                     object=f"topic:{name}", message=why, remedy=remedy))
        return RouteSpec(topic=name, pattern="blocked", reason=f"{code}: {why}",
                         records_per_second=topic.records_per_second)

    def _consumed(self, topic: TopicInfo, groups: list[ConsumerGroupInfo]) -> RouteSpec:
        name, sample = topic.name, topic.sample
        ordered, why_ordered = self._ordered(topic, groups)
        workflow_ids = {g.group_id for g in groups
                        if g.group_id in self.streams_apps or self.endpoints.is_workflow(g.group_id)}
        targets = [self._target(name, g, g.group_id in workflow_ids) for g in groups]
        plain = [t for t in targets if not t.workflow]
        ordering: OrderingSpec | None = None
        url_group: str | None = None
        pattern: Pattern
        if ordered:
            self._workflow_order_warnings(name, [t.group for t in targets if t.workflow])
        if ordered and plain:
            ordering, pattern, reason = self._ordering(topic, targets, why_ordered)
        elif ordered:
            key = "{topic}-{key}" if _all_keyed(topic) else "{topic}-{partition}"
            ordering = OrderingSpec(mode="flow_control", key=self.opts.prefix + key, parallelism=1,
                                    best_effort=[t.group for t in targets])
            pattern = "workflow"
            reason = (f"stateful consumer (Kafka Streams application): an Upstash Workflow run per "
                      f"record; {why_ordered}: runs started by a flow-control key with parallelism "
                      "1, best effort: order can break on a retry")
        elif len(plain) > 1:
            url_group = self.opts.prefix + name
            pattern = "url_group"
            reason = (f"{len(plain)} consumer groups each read every record: a URL group with one "
                      "endpoint per group")
        elif plain:
            pattern = "publish"
            reason = f"one consumer group ({plain[0].group}): publish each record to its endpoint"
        else:
            pattern = "workflow"
            reason = "stateful consumer (Kafka Streams application): an Upstash Workflow run per record"
        if workflow_ids and pattern != "workflow":
            reason += f"; {', '.join(sorted(workflow_ids))} as Upstash Workflow"
        retries, retry_delay, retry_reason, dead_letter = self._retries(name)
        rps = topic.records_per_second
        rate = max(1, math.ceil(rps * self.opts.headroom)) if rps and not ordered else None
        parallelism = None if ordered else min(self.limits.max_parallelism,
                                               max(1, len(topic.partitions)))
        # Framed values whose type the audit could not look up (registry down) are framed too:
        # the bridge decodes them by schema id at run time.
        framed = sample is not None and (
            sample.value_format in ("avro", "json_schema", "protobuf") or bool(sample.schema_ids))
        return RouteSpec(
            topic=name, pattern=pattern, reason=reason, targets=targets, url_group=url_group,
            ordering=ordering, retries=retries, retry_delay=retry_delay, retry_reason=retry_reason,
            failure_callback=self.endpoints.failure_callback, dead_letter=dead_letter,
            rate=rate, parallelism=parallelism,
            decode="decode" if framed else "bytes",
            tombstones="forward_empty" if sample is not None and sample.tombstones else "skip",
            records_per_second=rps, subjects=list(sample.subjects) if sample else [],
        )

    def _target(self, topic: str, group: ConsumerGroupInfo, workflow: bool) -> GroupTarget:
        if workflow:
            why = ("Kafka Streams application (changelog/repartition topics): multi-step, stateful"
                   if group.group_id in self.streams_apps else "marked as workflow in the endpoint file")
        else:
            why = "reads every record of the topic"
            if group.state.lower() == "empty" and group.lag_moving is False:
                why += "; stale group (no members): map it only if it still matters"
        return GroupTarget(group=group.group_id, endpoint=self.endpoints.for_group(group.group_id, topic),
                           workflow=workflow, reason=why)

    def _ordered(self, topic: TopicInfo, groups: list[ConsumerGroupInfo]) -> tuple[bool, str]:
        objects = {f"topic:{topic.name}"} | {f"group:{g.group_id}" for g in groups}
        if objects & self.ordering_findings:
            return True, "the audit found it ordering-sensitive"
        if topic.sample is not None and topic.sample.keyed_ratio > 0:
            return True, f"keyed records ({topic.sample.keyed_ratio:.0%}) read by a consumer group"
        return False, ""

    def _ordering(
        self, topic: TopicInfo, targets: list[GroupTarget], why: str
    ) -> tuple[OrderingSpec, Pattern, str]:
        """FIFO queues for the strict groups (counts settled by :meth:`_queues`), a flow-control
        key for best-effort groups and workflows."""
        keyed = _all_keyed(topic)
        key = self.opts.prefix + ("{topic}-{key}" if keyed else "{topic}-{partition}")
        plain = [t for t in targets if not t.workflow]
        opted = [t.group for t in plain if self.endpoints.ordering(t.group) == "best_effort"]
        best_effort = [t.group for t in targets if t.workflow or t.group in opted]
        for group in opted:
            self.blockers.append(Blocker(
                code="ORDERING_BEST_EFFORT", severity="warning", object=f"topic:{topic.name}",
                message=f"group {group} gets this ordered topic through a flow-control key with "
                "parallelism 1 (`ordering: best_effort` in the endpoint file): order can break "
                "on a retry, a refused record arrives after the key's later records",
                remedy=f"remove the best_effort entry for {group} to get FIFO queues, which keep "
                "order through retries",
            ))
        strict = [t.group for t in plain if t.group not in opted]
        if not strict:
            by = "the Kafka key" if keyed else "the partition"
            return (OrderingSpec(mode="flow_control", key=key, parallelism=1,
                                 best_effort=best_effort), "flow_control",
                    f"{why}: best effort, as the endpoint file asks ({', '.join(opted)}): a "
                    f"flow-control key by {by} with parallelism 1; order can break on a retry")
        self.fifo[topic.name] = _Fifo(
            partitions=max(1, len(topic.partitions)), rps=topic.records_per_second or 0.0,
            latency_ms={g: self.endpoints.latency_ms(g) for g in strict}, why=why)
        return (OrderingSpec(mode="fifo_queue", queue=self.opts.prefix + topic.name, key=key,
                             parallelism=1, best_effort=best_effort), "fifo_queue", why)

    def _workflow_order_warnings(self, topic: str, groups: list[str]) -> None:
        for group in groups:
            self.blockers.append(Blocker(
                code="ORDERING_BEST_EFFORT", severity="warning", object=f"topic:{topic}",
                message=f"workflow group {group}: its runs start through a flow-control key with "
                "parallelism 1, so order can break on a retry, and the steps of consecutive "
                "runs interleave",
                remedy="make the workflow tolerate reordering (e.g. keep the last applied offset "
                "or version per key in its state), or serve the group as a plain endpoint to "
                "get FIFO queues",
            ))

    def _queue_counts(self) -> dict[str, int]:
        """Queues per group for each FIFO route, within the plan's queue budget.

        Every route starts with one queue per group; the rest of the budget goes, a step at a
        time, to the route whose busiest queue is busiest, each step the fewest queues that put
        fewer partitions on that queue (never more queues than partitions). With budget enough,
        every partition has its own queue. Fewer queues than routes x groups is left to the plan
        fit (PLAN_LIMIT).
        """
        counts = {t: 1 for t in self.fifo}
        left = self.limits.max_queues - sum(f.groups for f in self.fifo.values())
        heap: list[tuple[float, int, str]] = []

        def push(topic: str) -> None:
            load, per_queue = self.fifo[topic].busiest(counts[topic])
            if per_queue > 1:
                heapq.heappush(heap, (-load, -per_queue, topic))

        for topic in self.fifo:
            push(topic)
        while heap and left > 0:
            _, neg_per_queue, topic = heapq.heappop(heap)
            fifo = self.fifo[topic]
            more = math.ceil(fifo.partitions / (-neg_per_queue - 1))
            cost = (more - counts[topic]) * fifo.groups
            if cost > left:
                continue
            counts[topic] = more
            left -= cost
            push(topic)
        return counts

    def _queues(self, route: RouteSpec, queues: int) -> RouteSpec:
        """The route with its queue count, capacity, reason, and ORDERED_CAPACITY where due."""
        fifo = self.fifo[route.topic]
        assert route.ordering is not None
        capacity = {g: fifo.capacity(queues, g) for g in fifo.latency_ms}
        p = fifo.partitions
        per_group = ", per group" if fifo.groups > 1 else ""
        shared = (f"; partitions share queues: the {self.limits.name} plan allows "
                  f"{self.limits.max_queues} queues" if queues < p else "")
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
        for group, cap in capacity.items():
            if fifo.rps > cap:
                self.blockers.append(self._capacity_blocker(route.topic, group, fifo, queues, cap))
        ordering = route.ordering.model_copy(update={"queues": queues, "capacity": {
            g: round(c, 1) for g, c in capacity.items()}})
        return route.model_copy(update={"ordering": ordering, "reason": reason})

    def _capacity_blocker(
        self, topic: str, group: str, fifo: _Fifo, queues: int, capacity: float
    ) -> Blocker:
        p, latency = fifo.partitions, fifo.latency_ms[group]
        per_queue = math.ceil(p / queues)
        remedies = []
        if queues < p:
            more = ("choose a larger --qstash-plan or fewer ordered routes"
                    if self.limits.name != "fixed" else "fewer ordered routes")
            remedies.append(f"more queues, up to {p} (one per partition; the {self.limits.name} "
                            f"plan's {self.limits.max_queues} are shared out: {more})")
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

    def _retries(self, topic: str) -> tuple[int, str | None, str, str]:
        aux = self.aux.get(topic)
        dead_letter = "QStash DLQ"
        if aux and aux.dlq_topics:
            dead_letter = f"QStash DLQ (replaces Kafka topic {', '.join(aux.dlq_topics)})"
        if aux and aux.retry_topics:
            delays = sorted(d for _, d in aux.retry_topics if d is not None and d >= 100)
            retries = len(aux.retry_topics)
            expr: str | None = None
            if delays:
                expr = str(delays[0])
                if len(delays) > 1 and delays[1] > delays[0]:
                    expr = f"{delays[0]} * pow({delays[1] / delays[0]:g}, retried)"
            names = ", ".join(t for t, _ in aux.retry_topics)
            return retries, expr, f"{retries} retry topic(s) seen: {names}", dead_letter
        for conn in (aux.connectors if aux else []):
            timeout = _int(conn.config.get("errors.retry.timeout"))
            delay_max = _int(conn.config.get("errors.retry.delay.max.ms")) or 60_000
            if conn.config.get("errors.deadletterqueue.topic.name"):
                dead_letter = (f"QStash DLQ (replaces {conn.name}'s "
                               f"{conn.config['errors.deadletterqueue.topic.name']})")
            if timeout is None or timeout == 0:
                continue
            retries = 20 if timeout < 0 else _doublings(timeout, delay_max)
            return (retries, f"min({delay_max}, 1000 * pow(2, retried))",
                    f"connector {conn.name}: errors.retry.timeout={timeout}, "
                    f"errors.retry.delay.max.ms={delay_max}", dead_letter)
        return 3, None, "no retry topics or connector error settings seen: QStash defaults", dead_letter

    # -------------------------------------------------------------------------------- resources
    def resources(self, routes: list[RouteSpec]) -> Resources:
        queues: list[QueueSpec] = []
        groups: list[UrlGroupSpec] = []
        for route in routes:
            plain = [t for t in route.targets if not t.workflow]
            for name in queue_names(route):
                queues.append(QueueSpec(name=name, parallelism=1))
            if route.url_group:
                groups.append(UrlGroupSpec(name=route.url_group, endpoints=[
                    UrlGroupEndpointSpec(name=safe_name(t.group), url=t.endpoint) for t in plain
                ]))
        schedules = [self._schedule(c) for c in self.inv.connect.connectors if c.kind == "source"]
        return Resources(queues=queues, url_groups=groups, schedules=schedules)

    def _schedule(self, conn: ConnectorInfo) -> ScheduleSpec:
        poll = next((_int(v) for k, v in conn.config.items() if k.endswith("poll.interval.ms")), None)
        minutes = max(1, round((poll or 60_000) / 60_000))
        cron = "* * * * *" if minutes == 1 else (
            f"*/{minutes} * * * *" if minutes < 60 else "0 * * * *"
        )
        topics = ", ".join(conn.topics) or "its topics"
        return ScheduleSpec(
            schedule_id=self.opts.prefix + "connector-" + safe_name(conn.name),
            destination=self.endpoints.for_connector(conn.name),
            cron=cron,
            body=json.dumps({"connector": conn.name, "topics": conn.topics}, sort_keys=True),
            reason=f"source connector {conn.name} ({conn.connector_class.rsplit('.', 1)[-1]}) "
            f"produces into {topics} periodically: a schedule calls its replacement job "
            f"every {minutes} min",
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


def _auxiliary(inv: Inventory, classes: dict[str, TopicClass]) -> dict[str, _Aux]:
    """Per topic: its retry and dead-letter topics and the connectors reading it."""
    names = set(classes)
    out: dict[str, _Aux] = {}
    for c in classes.values():
        if c.serves is None:
            continue
        if c.role == "retry":
            out.setdefault(c.serves, _Aux()).retry_topics.append((c.name, c.attempt))
        elif c.role == "dead-letter":
            out.setdefault(c.serves, _Aux()).dlq_topics.append(c.name)
    for conn in inv.connect.connectors:
        dlq_name = conn.config.get("errors.deadletterqueue.topic.name")
        for topic in conn.topics:
            aux = out.setdefault(topic, _Aux())
            aux.connectors.append(conn)
            if dlq_name and dlq_name in names and dlq_name not in aux.dlq_topics:
                aux.dlq_topics.append(dlq_name)
    for aux in out.values():
        aux.retry_topics.sort()
        aux.dlq_topics.sort()
    return out


def _all_keyed(topic: TopicInfo) -> bool:
    return topic.sample is not None and topic.sample.keyed_ratio >= 0.999


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _doublings(timeout_ms: int, delay_max_ms: int) -> int:
    """How many retries with delay min(max, 1s x 2^n) fit in ``timeout_ms``."""
    total, n = 0, 0
    while n < 20:
        total += min(delay_max_ms, 1000 * 2**n)
        if total > timeout_ms:
            break
        n += 1
    return max(1, n)
