"""The audit's rules: an inventory in, findings out. Pure logic, one function per code.

Codes are stable (documented in docs/audit.md); severities:

- blocker: the workload cannot move to QStash as it stands on the chosen plan;
- warning: it can move, with a design change the team has to make;
- info: worth knowing when planning (maps onto a QStash feature).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from migrator.inventory import Finding, Inventory, Severity, TopicInfo
from migrator.qstash_plans import MIB, PLANS, PlanLimits

if TYPE_CHECKING:  # only the type: the rules import without the Kafka client
    from migrator.kafka.access import AccessDenied

__all__ = [
    "CATALOG",
    "PLANS",
    "CodeInfo",
    "PlanLimits",
    "evaluate",
    "is_dead_letter_topic",
    "is_streams_internal",
    "permission_findings",
    "projected_messages_per_day",
    "readers_by_topic",
    "streams_internal_topics",
]

PlanName = Literal["free", "payg", "fixed"]





@dataclass(frozen=True)
class CodeInfo:
    severity: Severity
    title: str
    remedy: str


CATALOG: dict[str, CodeInfo] = {
    "RECORD_TOO_LARGE": CodeInfo(
        "blocker",
        "Records larger than the QStash plan's message size limit",
        "Move large payloads to object storage and publish a reference (claim-check), split "
        "them, or choose a plan with a larger limit (--qstash-plan).",
    ),
    "COMPACTED_TOPIC": CodeInfo(
        "warning",
        "Log-compacted topic: consumers rely on the latest value per key",
        "QStash delivers messages, it keeps no per-key state: keep the latest value per key in "
        "a database (e.g. Upstash Redis) that the endpoint updates, and bootstrap it once.",
    ),
    "STREAMS_INTERNAL_TOPIC": CodeInfo(
        "warning",
        "Kafka Streams internal topic (changelog or repartition)",
        "Do not migrate the topic itself: it belongs to a Kafka Streams application whose state "
        "and repartitioning have to be redesigned (e.g. as an Upstash Workflow with its own store).",
    ),
    "ORDERING_SENSITIVE": CodeInfo(
        "warning",
        "Keyed records read by a consumer group: per-key order probably matters",
        "Publish through a QStash queue with parallelism 1 per ordering key (or flow control "
        "keyed by the record key); `migrator bridge` keeps per-partition order.",
    ),
    "FAN_OUT": CodeInfo(
        "info",
        "Topic read by several consumer groups",
        "Map the topic to a QStash URL group with one endpoint per group; every endpoint is "
        "billed as one message per record.",
    ),
    "CONSUMER_LAG": CodeInfo(
        "warning",
        "Consumer group has unconsumed records",
        "Let the group drain (or record its offsets) before cutting over, so no record is lost "
        "or delivered twice; `migrator bridge` can start from the committed offsets.",
    ),
    "STALE_CONSUMER_GROUP": CodeInfo(
        "info",
        "Consumer group with no members whose offsets do not move",
        "Confirm the application is retired and leave the group out of the migration, or "
        "restart it to drain before cutover.",
    ),
    "TOMBSTONES": CodeInfo(
        "warning",
        "Topic carries tombstones (records with a null value)",
        "QStash has no null body: decide what a delete means for the endpoint (e.g. an empty "
        "body with an `Upstash-Forward-Kafka-Tombstone` header) and handle it there.",
    ),
    "SCHEMA_ENCODED_PAYLOADS": CodeInfo(
        "warning",
        "Values are Schema-Registry framed (Avro, JSON Schema or Protobuf)",
        "Endpoints cannot read framed binary: decode to JSON in the bridge (the registry must "
        "stay reachable), or have producers publish JSON directly.",
    ),
    "CONNECTOR_NEEDS_MAPPING": CodeInfo(
        "warning",
        "Kafka Connect connector has no direct QStash equivalent",
        "Sink connectors become QStash destinations (an endpoint doing the connector's job); "
        "source connectors keep feeding Kafka until producers publish to QStash themselves.",
    ),
    "DAILY_QUOTA": CodeInfo(
        "blocker",
        "Projected messages per day exceed the QStash plan's daily quota",
        "Choose a plan with a larger quota (pay-as-you-go has none), batch several records "
        "per message, or leave high-volume topics on Kafka.",
    ),
    "SOURCE_UNAVAILABLE": CodeInfo(
        "warning",
        "A source could not be read; its section of the report is incomplete",
        "Check the URL and credentials (--schema-registry-url/-user/-password, --connect-url/"
        "-user/-password) and that the service is up, then run the audit again.",
    ),
    "PERMISSION_DENIED": CodeInfo(
        "warning",
        "Kafka refused the audit's principal an operation; that part of the report is missing",
        "Grant the audit principal the read-only ACL named in the finding (kafka-acls --add "
        "--allow-principal ... --operation ...), then run the audit again.",
    ),
    "DEAD_LETTER_TOPIC": CodeInfo(
        "info",
        "Dead-letter topic",
        "QStash keeps failed messages in its own DLQ (retention by plan): replay or drain this "
        "topic before cutover and point failure handling at QStash's DLQ or a failure callback.",
    ),
}

_STREAMS_RE = re.compile(r".+-(changelog|repartition)$")
# Names Kafka Streams generates for unnamed stores and repartitions.
_STREAMS_GENERATED_RE = re.compile(r"-(KSTREAM|KTABLE)-[A-Z-]*\d{10}-(changelog|repartition)$")
_DLQ_RE = re.compile(r"(^|[._-])(dlq|dlt|dead[._-]?letters?([._-]?queue)?)$", re.I)


def is_streams_internal(topic: str, groups: Collection[str] = ()) -> bool:
    """A Kafka Streams changelog or repartition topic: ``<application.id>-<name>-changelog`` (or
    ``-repartition``) where a consumer group named ``<application.id>`` exists (Streams commits
    under it), or a name Streams generated (``-KSTREAM-...-0000000003-changelog``). A plain topic
    that merely ends in ``-changelog`` (say a CDC feed read by an ordinary group) is not one."""
    if not _STREAMS_RE.match(topic):
        return False
    if _STREAMS_GENERATED_RE.search(topic):
        return True
    parts = topic.split("-")
    return any("-".join(parts[:i]) in groups for i in range(1, len(parts) - 1))


def streams_internal_topics(inv: Inventory) -> set[str]:
    """The inventory's topics that are Kafka Streams changelog or repartition topics."""
    groups = {g.group_id for g in inv.consumer_groups}
    return {t.name for t in inv.topics if is_streams_internal(t.name, groups)}


def is_dead_letter_topic(topic: str) -> bool:
    return bool(_DLQ_RE.search(topic))


def _finding(code: str, obj: str, message: str, *, severity: Severity | None = None) -> Finding:
    info = CATALOG[code]
    return Finding(
        code=code, severity=severity or info.severity, object=obj, message=message,
        remedy=info.remedy,
    )


def _mb(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n / 1024:.0f} KiB"


def readers_by_topic(inv: Inventory) -> dict[str, list[str]]:
    """Topic -> the groups that read it (committed offsets or assignments)."""
    readers: dict[str, list[str]] = {}
    for group in inv.consumer_groups:
        for topic in group.topics:
            readers.setdefault(topic, []).append(group.group_id)
    return readers


def _migratable(topics: Iterable[TopicInfo]) -> list[TopicInfo]:
    return [t for t in topics if not t.internal]


def _record_too_large(inv: Inventory, plan: PlanLimits) -> list[Finding]:
    """Per topic: a sampled record or a topic override above the limit. A broker- or
    cluster-wide message.max.bytes above it is one finding on the cluster (Kafka's default,
    1,048,588 bytes, counts batch overhead and is left alone)."""
    out = []
    broker_wide = 0
    for t in _migratable(inv.topics):
        conf = t.configs.get("max.message.bytes")
        if conf and conf.source not in ("default", "topic") and conf.value and conf.value.isdigit():
            broker_wide = max(broker_wide, int(conf.value))
        if t.sample and t.sample.size_max > plan.max_message_bytes:
            out.append(_finding(
                "RECORD_TOO_LARGE", f"topic:{t.name}",
                f"largest sampled record is {_mb(t.sample.size_max)}, above the {plan.name} "
                f"plan's {_mb(plan.max_message_bytes)} message limit",
            ))
            continue
        if conf and conf.source == "topic" and conf.value and conf.value.isdigit() \
                and int(conf.value) > plan.max_message_bytes:
            out.append(_finding(
                "RECORD_TOO_LARGE", f"topic:{t.name}",
                f"max.message.bytes is set to {_mb(int(conf.value))}, above the {plan.name} "
                f"plan's {_mb(plan.max_message_bytes)} message limit (no such record sampled)",
                severity="warning",
            ))
    if broker_wide > plan.max_message_bytes:
        out.append(_finding(
            "RECORD_TOO_LARGE", "cluster",
            f"the brokers' message.max.bytes is {_mb(broker_wide)}, above the {plan.name} plan's "
            f"{_mb(plan.max_message_bytes)} message limit, on every topic without an override",
            severity="warning",
        ))
    return out


def _compacted(inv: Inventory, plan: PlanLimits) -> list[Finding]:
    out = []
    streams = streams_internal_topics(inv)
    for t in _migratable(inv.topics):
        policy = t.config("cleanup.policy") or ""
        if "compact" in policy and t.name not in streams:
            out.append(_finding(
                "COMPACTED_TOPIC", f"topic:{t.name}", f"cleanup.policy={policy}",
            ))
    return out


def _streams(inv: Inventory, plan: PlanLimits) -> list[Finding]:
    streams = streams_internal_topics(inv)
    return [
        _finding("STREAMS_INTERNAL_TOPIC", f"topic:{t.name}",
                 f"{t.name} is a Kafka Streams "
                 f"{'changelog' if t.name.endswith('-changelog') else 'repartition'} topic")
        for t in _migratable(inv.topics) if t.name in streams
    ]


def _ordering(inv: Inventory, plan: PlanLimits) -> list[Finding]:
    streams = streams_internal_topics(inv)
    readers = readers_by_topic(inv)
    out = []
    for t in _migratable(inv.topics):
        if t.sample and t.sample.keyed_ratio > 0 and readers.get(t.name) \
                and t.name not in streams:
            groups = ", ".join(readers[t.name])
            out.append(_finding(
                "ORDERING_SENSITIVE", f"topic:{t.name}",
                f"{t.sample.keyed_ratio:.0%} of sampled records are keyed and group(s) {groups} "
                f"read them across {len(t.partitions)} partition(s)",
            ))
    return out


def _fan_out(inv: Inventory, plan: PlanLimits) -> list[Finding]:
    names = {t.name for t in _migratable(inv.topics)}
    return [
        _finding("FAN_OUT", f"topic:{topic}",
                 f"read by {len(groups)} groups: {', '.join(groups)}")
        for topic, groups in sorted(readers_by_topic(inv).items())
        if len(groups) > 1 and topic in names
    ]


def _lag(inv: Inventory, plan: PlanLimits) -> list[Finding]:
    return [
        _finding("CONSUMER_LAG", f"group:{g.group_id}",
                 f"{g.total_lag:,} records behind on {', '.join(g.topics)}")
        for g in inv.consumer_groups if g.total_lag > 0
    ]


def _stale(inv: Inventory, plan: PlanLimits) -> list[Finding]:
    out = []
    for g in inv.consumer_groups:
        if g.members or g.committed_moving:
            continue
        how = "no committed offset moved while sampling" if g.committed_moving is False \
            else "offsets not re-checked (--sample-seconds 0)"
        out.append(_finding(
            "STALE_CONSUMER_GROUP", f"group:{g.group_id}",
            f"state {g.state}, no members, lag {g.total_lag:,}; {how}",
        ))
    return out


def _tombstones(inv: Inventory, plan: PlanLimits) -> list[Finding]:
    streams = streams_internal_topics(inv)
    return [
        _finding("TOMBSTONES", f"topic:{t.name}",
                 f"{t.sample.tombstones} of {t.sample.sampled} sampled records are tombstones")
        for t in _migratable(inv.topics)
        if t.sample and t.sample.tombstones > 0 and t.name not in streams
    ]


def _schema(inv: Inventory, plan: PlanLimits) -> list[Finding]:
    out = []
    for t in _migratable(inv.topics):
        if not t.sample or not t.sample.schema_ids:
            continue
        kinds = sorted(k for k in t.sample.formats
                       if k in ("avro", "json_schema", "protobuf", "unknown"))
        subjects = f" (subjects {', '.join(t.sample.subjects)})" if t.sample.subjects else ""
        ids = ", ".join(str(i) for i in t.sample.schema_ids)
        out.append(_finding(
            "SCHEMA_ENCODED_PAYLOADS", f"topic:{t.name}",
            f"{'/'.join(kinds)} framed values with schema id(s) {ids}{subjects}",
        ))
    return out


def _connectors(inv: Inventory, plan: PlanLimits) -> list[Finding]:
    out = []
    for c in inv.connect.connectors:
        topics = f" on {', '.join(c.topics)}" if c.topics else ""
        out.append(_finding(
            "CONNECTOR_NEEDS_MAPPING", f"connector:{c.name}",
            f"{c.kind} connector {c.connector_class.rsplit('.', 1)[-1]}{topics} ({c.state})",
        ))
    return out


def projected_messages_per_day(inv: Inventory) -> tuple[int, dict[str, int]]:
    """Messages per day QStash would bill: per topic, max(last 24 h, sampled rate x 86400),
    times the number of groups reading it (each group becomes one endpoint)."""
    streams = streams_internal_topics(inv)
    readers = readers_by_topic(inv)
    per_topic: dict[str, int] = {}
    for t in _migratable(inv.topics):
        if t.name in streams:
            continue
        daily = max(
            t.records_last_24h or 0,
            int((t.records_per_second or 0.0) * 86_400),
        )
        if daily:
            per_topic[t.name] = daily * max(1, len(readers.get(t.name, [])))
    return sum(per_topic.values()), per_topic


def _daily_quota(inv: Inventory, plan: PlanLimits) -> list[Finding]:
    if plan.messages_per_day is None:
        return []
    total, per_topic = projected_messages_per_day(inv)
    if total <= plan.messages_per_day:
        return []
    top = sorted(per_topic.items(), key=lambda kv: -kv[1])[:3]
    biggest = ", ".join(f"{name} {count:,}" for name, count in top)
    return [_finding(
        "DAILY_QUOTA", "cluster",
        f"about {total:,} messages/day projected (largest: {biggest}), above the {plan.name} "
        f"plan's {plan.messages_per_day:,}/day",
    )]


def _unavailable(inv: Inventory, plan: PlanLimits) -> list[Finding]:
    out = []
    for name, url, status in (
        ("schema-registry", inv.schema_registry.url, inv.schema_registry.status),
        ("connect", inv.connect.url, inv.connect.status),
    ):
        if url and not status.available:
            out.append(_finding(
                "SOURCE_UNAVAILABLE", name,
                f"{name} at {url} could not be read: {status.error}",
            ))
    return out


def _dead_letter(inv: Inventory, plan: PlanLimits) -> list[Finding]:
    return [
        _finding("DEAD_LETTER_TOPIC", f"topic:{t.name}",
                 f"{t.name} looks like a dead-letter topic ({t.total_records:,} records)")
        for t in _migratable(inv.topics) if is_dead_letter_topic(t.name)
    ]


# What a refused (resource kind, operation) leaves out of the report.
_DENIAL_EFFECT = {
    ("group", "Describe"): "the group is left out of consumer_groups: its state, members, "
                           "committed offsets, lag and the topics it reads are unknown",
    ("topic", "DescribeConfigs"): "its configs are not reported, so config-based findings "
                                  "(COMPACTED_TOPIC, max.message.bytes) were not checked",
    ("topic", "Read"): "no record was sampled, so record-based findings (sizes, keys, "
                       "tombstones, value formats) were not checked",
    ("topic", "Describe"): "its partitions or offsets are missing from the report",
    ("cluster", "Describe"): "only the consumer groups it may Describe are listed, and topics "
                             "it may not Describe are hidden from metadata: both may be missing "
                             "from this report",
}
_ACL_FLAG = {"cluster": "--cluster", "topic": "--topic", "group": "--group"}


def permission_findings(denials: Iterable[AccessDenied], principal: str | None = None,
                        bootstrap_servers: str | None = None) -> list[Finding]:
    """One PERMISSION_DENIED finding per refused resource, naming the refused operation(s),
    what the audit was doing and the ``kafka-acls`` command that grants the missing ACL."""
    who = principal or "User:<audit principal>"
    by_object: dict[tuple[str, str], dict[str, list[str]]] = {}
    for d in denials:
        ops = by_object.setdefault((d.resource, d.name), {})
        whats = ops.setdefault(d.operation, [])
        if d.what not in whats:
            whats.append(d.what)
    out = []
    for (kind, name), ops in by_object.items():
        obj = "cluster" if kind == "cluster" else f"{kind}:{name}"
        about = "the cluster" if kind == "cluster" else f"{kind} {name}"
        parts = []
        for op, whats in ops.items():
            effect = _DENIAL_EFFECT.get((kind, op), "that part of the report is missing")
            parts.append(f"Kafka refused {who} {op} on {about} ({' and '.join(whats)}): {effect}")
        flags = " ".join(f"--operation {op}" for op in ops)
        target = "--cluster" if kind == "cluster" else f"{_ACL_FLAG[kind]} {name}"
        server = f" --bootstrap-server {bootstrap_servers}" if bootstrap_servers else ""
        out.append(Finding(
            code="PERMISSION_DENIED", severity=CATALOG["PERMISSION_DENIED"].severity, object=obj,
            message="; ".join(parts),
            remedy=f"Grant the read-only ACL: kafka-acls{server} --add --allow-principal {who} "
                   f"{flags} {target}",
        ))
    return sorted(out, key=lambda f: f.object)


RULES: tuple[Callable[[Inventory, PlanLimits], list[Finding]], ...] = (
    _unavailable,
    _daily_quota,
    _record_too_large,
    _streams,
    _compacted,
    _ordering,
    _schema,
    _tombstones,
    _lag,
    _connectors,
    _fan_out,
    _stale,
    _dead_letter,
)

_ORDER = {"blocker": 0, "warning": 1, "info": 2}


def evaluate(inv: Inventory, plan: str | None = None, *,
             extra: Iterable[Finding] = ()) -> list[Finding]:
    """Every finding for the inventory on the QStash plan (default: the inventory's plan), plus
    ``extra`` ones found while reading (e.g. PERMISSION_DENIED), blockers first."""
    limits = PLANS[plan or inv.qstash_plan]
    findings = [f for rule in RULES for f in rule(inv, limits)] + list(extra)
    return sorted(findings, key=lambda f: (_ORDER[f.severity], f.code, f.object))
