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

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from migrator import __version__
from migrator.finding_codes import plan_severity
from migrator.inventory import ConnectorInfo, ConsumerGroupInfo, Inventory, TopicInfo
from migrator.plan.cost import PriceTable, estimate
from migrator.plan.endpoints import EndpointMap
from migrator.plan.fifo import FifoRoute, queue_counts, queue_names, safe_name, with_queues
from migrator.plan.limits import fit
from migrator.plan.retries import auxiliary, config_int, retry_settings
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
from migrator.topic_roles import classify, readers, streams_applications

__all__ = ["PlanOptions", "build_plan"]


@dataclass(frozen=True)
class PlanOptions:
    """Knobs of the planner (defaults documented in docs/plan.md)."""

    qstash_tier: TierName = "payg"
    prefix: str = ""
    headroom: float = 2.0
    """Flow-control rate = observed records/s x headroom."""
    prices: PriceTable = field(default_factory=lambda: PriceTable())
    inventory_path: str | None = None


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


class _Planner:
    def __init__(
        self, inv: Inventory, endpoints: EndpointMap, opts: PlanOptions, limits: TierLimits
    ) -> None:
        self.inv, self.endpoints, self.opts, self.limits = inv, endpoints, opts, limits
        self.blockers: list[Blocker] = []
        self.broker_max_message_bytes = 0
        """The largest broker- or cluster-wide max.message.bytes seen (one warning, not one per
        topic; Kafka's own default, 1,048,588, counts batch overhead and is never flagged)."""
        self.fifo: dict[str, FifoRoute] = {}
        names = {t.name for t in inv.topics}
        self.classes = classify(inv)
        self.aux = auxiliary(inv, self.classes)
        self.streams_apps = streams_applications({g.group_id for g in inv.consumer_groups}, names)
        self.readers = readers(inv)
        self.ordering_findings = {
            f.object for f in inv.findings if f.code == "ORDERING_SENSITIVE"
        }

    # ----------------------------------------------------------------------------------- routes
    def routes(self) -> list[RouteSpec]:
        routes = [self._route(topic) for topic in sorted(self.inv.topics, key=lambda t: t.name)]
        counts = queue_counts(self.fifo, self.limits.max_queues)
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
            configured = config_int(conf.value) if conf is not None else None
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
        retries, retry_delay, retry_reason, dead_letter = retry_settings(self.aux.get(name))
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
        self.fifo[topic.name] = FifoRoute(
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

    def _queues(self, route: RouteSpec, queues: int) -> RouteSpec:
        route, blockers = with_queues(route, self.fifo[route.topic], queues, self.limits)
        self.blockers.extend(blockers)
        return route

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
        poll = next((config_int(v) for k, v in conn.config.items() if k.endswith("poll.interval.ms")), None)
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


def _all_keyed(topic: TopicInfo) -> bool:
    return topic.sample is not None and topic.sample.keyed_ratio >= 0.999

