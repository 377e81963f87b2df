"""The audit's rules: an inventory in, findings out. Pure logic, one function per code.

Codes are stable (documented in docs/audit.md); severities:

- blocker: the workload cannot move to QStash as it stands on the chosen plan;
- warning: it can move, with a design change the team has to make;
- info: worth knowing when planning (maps onto a QStash feature).

Each code's severity is in :mod:`migrator.finding_codes`, which the plan's blockers read too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from migrator.finding_codes import CATALOG, CodeInfo
from migrator.inventory import Finding, Inventory, Severity, TopicInfo
from migrator.qstash_tiers import MIB, TIERS, TierLimits, TierName
from migrator.topic_roles import TopicRole, classify, readers
from migrator.volume import estimate_volume

if TYPE_CHECKING:  # only the type: the rules import without the Kafka client
    from migrator.kafka.access import AccessDenied

__all__ = [
    "CATALOG",
    "CodeInfo",
    "evaluate",
    "permission_findings",
    "readers_by_topic",
]






def _finding(code: str, obj: str, message: str, *, severity: Severity | None = None) -> Finding:
    info = CATALOG[code]
    return Finding(
        code=code, severity=severity or info.severity, object=obj, message=message,
        remedy=info.remedy,
    )


def _mb(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n / 1024:.0f} KiB"


def readers_by_topic(inv: Inventory) -> dict[str, list[str]]:
    """Topic -> the ids of the groups that read it (see :func:`migrator.topic_roles.readers`)."""
    return {topic: [g.group_id for g in groups] for topic, groups in readers(inv).items()}


def _topics(inv: Inventory, *roles: TopicRole) -> list[TopicInfo]:
    """The inventory's topics whose role (:mod:`migrator.topic_roles`) is one of ``roles``
    (default: every topic but Kafka's, Connect's and the registry's own)."""
    classes = classify(inv)
    return [t for t in inv.topics
            if (classes[t.name].role in roles if roles else classes[t.name].role != "internal")]


def _migratable(inv: Inventory) -> list[TopicInfo]:
    """Topics whose records would move: neither internal nor Kafka Streams internals."""
    return _topics(inv, "data", "retry", "dead-letter")


def _record_too_large(inv: Inventory, tier: TierLimits) -> list[Finding]:
    """Per topic: a sampled record or a topic override above the limit. A broker- or
    cluster-wide message.max.bytes above it is one finding on the cluster (Kafka's default,
    1,048,588 bytes, counts batch overhead and is left alone)."""
    out = []
    broker_wide = 0
    for t in _topics(inv):
        conf = t.configs.get("max.message.bytes")
        if conf and conf.source not in ("default", "topic") and conf.value and conf.value.isdigit():
            broker_wide = max(broker_wide, int(conf.value))
        if t.sample and t.sample.size_max > tier.max_message_bytes:
            out.append(_finding(
                "RECORD_TOO_LARGE", f"topic:{t.name}",
                f"largest sampled record is {_mb(t.sample.size_max)}, above the {tier.name} "
                f"plan's {_mb(tier.max_message_bytes)} message limit",
            ))
            continue
        if conf and conf.source == "topic" and conf.value and conf.value.isdigit() \
                and int(conf.value) > tier.max_message_bytes:
            out.append(_finding(
                "RECORD_TOO_LARGE", f"topic:{t.name}",
                f"max.message.bytes is set to {_mb(int(conf.value))}, above the {tier.name} "
                f"plan's {_mb(tier.max_message_bytes)} message limit (no such record sampled)",
                severity="warning",
            ))
    if broker_wide > tier.max_message_bytes:
        out.append(_finding(
            "RECORD_TOO_LARGE", "cluster",
            f"the brokers' message.max.bytes is {_mb(broker_wide)}, above the {tier.name} plan's "
            f"{_mb(tier.max_message_bytes)} message limit, on every topic without an override",
            severity="warning",
        ))
    return out


def _compacted(inv: Inventory, tier: TierLimits) -> list[Finding]:
    out = []
    for t in _migratable(inv):
        policy = t.config("cleanup.policy") or ""
        if "compact" in policy:
            out.append(_finding(
                "COMPACTED_TOPIC", f"topic:{t.name}", f"cleanup.policy={policy}",
            ))
    return out


def _streams(inv: Inventory, tier: TierLimits) -> list[Finding]:
    return [
        _finding("STREAMS_INTERNAL_TOPIC", f"topic:{t.name}",
                 f"{t.name} is a Kafka Streams "
                 f"{'changelog' if t.name.endswith('-changelog') else 'repartition'} topic")
        for t in _topics(inv, "streams-internal")
    ]


def _ordering(inv: Inventory, tier: TierLimits) -> list[Finding]:
    reading = readers_by_topic(inv)
    out = []
    for t in _migratable(inv):
        if t.sample and t.sample.keyed_ratio > 0 and reading.get(t.name):
            groups = ", ".join(reading[t.name])
            out.append(_finding(
                "ORDERING_SENSITIVE", f"topic:{t.name}",
                f"{t.sample.keyed_ratio:.0%} of sampled records are keyed and group(s) {groups} "
                f"read them across {len(t.partitions)} partition(s)",
            ))
    return out


def _fan_out(inv: Inventory, tier: TierLimits) -> list[Finding]:
    names = {t.name for t in _topics(inv)}
    return [
        _finding("FAN_OUT", f"topic:{topic}",
                 f"read by {len(groups)} groups: {', '.join(groups)}")
        for topic, groups in sorted(readers_by_topic(inv).items())
        if len(groups) > 1 and topic in names
    ]


def _lag(inv: Inventory, tier: TierLimits) -> list[Finding]:
    return [
        _finding("CONSUMER_LAG", f"group:{g.group_id}",
                 f"{g.total_lag:,} records behind on {', '.join(g.topics)}")
        for g in inv.consumer_groups if g.total_lag > 0
    ]


def _stale(inv: Inventory, tier: TierLimits) -> list[Finding]:
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


def _tombstones(inv: Inventory, tier: TierLimits) -> list[Finding]:
    return [
        _finding("TOMBSTONES", f"topic:{t.name}",
                 f"{t.sample.tombstones} of {t.sample.sampled} sampled records are tombstones")
        for t in _migratable(inv)
        if t.sample and t.sample.tombstones > 0
    ]


def _schema(inv: Inventory, tier: TierLimits) -> list[Finding]:
    out = []
    for t in _topics(inv):
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


def _connectors(inv: Inventory, tier: TierLimits) -> list[Finding]:
    out = []
    for c in inv.connect.connectors:
        topics = f" on {', '.join(c.topics)}" if c.topics else ""
        out.append(_finding(
            "CONNECTOR_NEEDS_MAPPING", f"connector:{c.name}",
            f"{c.kind} connector {c.connector_class.rsplit('.', 1)[-1]}{topics} ({c.state})",
        ))
    return out


def _daily_quota(inv: Inventory, tier: TierLimits) -> list[Finding]:
    if tier.messages_per_day is None:
        return []
    volume = estimate_volume(inv)
    total = volume.messages_per_day
    if total <= tier.messages_per_day:
        return []
    top = sorted(volume.topics, key=lambda v: -v.messages_per_day)[:3]
    biggest = ", ".join(f"{v.topic} {v.messages_per_day:,}" for v in top)
    return [_finding(
        "DAILY_QUOTA", "cluster",
        f"about {total:,} messages/day projected (largest: {biggest}), above the {tier.name} "
        f"plan's {tier.messages_per_day:,}/day",
    )]


def _unavailable(inv: Inventory, tier: TierLimits) -> list[Finding]:
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


def _dead_letter(inv: Inventory, tier: TierLimits) -> list[Finding]:
    return [
        _finding("DEAD_LETTER_TOPIC", f"topic:{t.name}",
                 f"{t.name} looks like a dead-letter topic ({t.total_records:,} records)")
        for t in _topics(inv, "dead-letter")
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


RULES: tuple[Callable[[Inventory, TierLimits], list[Finding]], ...] = (
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


def evaluate(inv: Inventory, tier: TierName | None = None, *,
             extra: Iterable[Finding] = ()) -> list[Finding]:
    """Every finding for the inventory on the QStash tier (default: the inventory's), plus
    ``extra`` ones found while reading (e.g. PERMISSION_DENIED), blockers first."""
    limits = TIERS[tier or inv.qstash_plan]
    findings = [f for rule in RULES for f in rule(inv, limits)] + list(extra)
    return sorted(findings, key=lambda f: (_ORDER[f.severity], f.code, f.object))
