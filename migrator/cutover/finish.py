"""The decommission check: is every topic and group the bridge config routes off Kafka for good?

Per routed topic: producers quiet and the bridge drained (:mod:`migrator.cutover.producers`).
Per replaced group: switched, verified (:func:`~migrator.cutover.verify.verify_group`), its old
group without members. When nothing is outstanding, what can be removed is listed as commands:
the routed topics, the old consumer groups, the bridge's consumer groups (per replaced group,
its shadow groups, its presence group, its own group), the Kafka Connect connectors that
write to or read a routed topic (with a Connect URL: a running one is outstanding, a source
through the producers' check, a sink here), and (printed, never deleted) its cutover state
topic and dead-letter topic. :func:`delete_routed` removes only those connectors (first, so
nothing reads or writes a topic being deleted), the routed topics and those groups.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from migrator.bridge.config import BridgeConfig
from migrator.config import KafkaConnection, QStashConnection, RestConnection, redact_url
from migrator.cutover.connectors import connector_uses, delete_connectors
from migrator.cutover.producers import await_producers_stopped
from migrator.cutover.scope import (
    bridge_group,
    presence_group,
    replaced_groups,
    routed_topics,
    shadow_group,
)
from migrator.cutover.state import GroupCutover, State
from migrator.cutover.store import CutoverStore
from migrator.cutover.verify import verify_group
from migrator.errors import FenceTimeoutError
from migrator.kafka.admin import KafkaAdmin
from migrator.kafka.group_offsets import GroupOffsetAdmin

__all__ = ["Decommission", "check_finished", "delete_routed"]


@dataclass
class Decommission:
    """What is outstanding, and what may be removed once nothing is."""

    outstanding: list[str] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # old groups and the bridge's groups
    kept: list[str] = field(default_factory=list)  # printed only: state and dead-letter topics
    connectors: list[str] = field(default_factory=list)  # touching routed topics
    connect_url: str | None = None

    @property
    def done(self) -> bool:
        return not self.outstanding

    def commands(self, bootstrap: str) -> list[str]:
        b = shlex.quote(bootstrap)
        out = [f"kafka-topics.sh --bootstrap-server {b} --delete --topic {shlex.quote(t)}"
               for t in self.topics]
        out += [f"kafka-consumer-groups.sh --bootstrap-server {b} --delete --group "
                f"{shlex.quote(g)}" for g in self.groups]
        if self.connect_url is not None:
            out += [f"curl -fsS -X DELETE {shlex.quote(f'{self.connect_url}/connectors/{c}')}"
                    for c in self.connectors]
        out += [f"# optional, after you archived it: kafka-topics.sh --bootstrap-server {b} "
                f"--delete --topic {shlex.quote(t)}" for t in self.kept]
        return out


def check_finished(cfg: BridgeConfig, admin: KafkaAdmin, store: CutoverStore,
                   connection: KafkaConnection, *, qstash: QStashConnection | None,
                   window: float, where: str = "bridge config",
                   connect: RestConnection | None = None) -> Decommission:
    """Everything :class:`Decommission` lists, checked against Kafka, QStash and (``connect``)
    Kafka Connect now (each topic's end offsets are watched for ``window`` seconds)."""
    out = Decommission()
    if connect is not None:
        out.connect_url = redact_url(connect.url)
        uses, error = connector_uses(connect, [r.topic for r in cfg.routes])
        if error is not None:
            out.outstanding.append(f"{error}: cannot tell which connectors use routed topics")
        for u in uses:
            out.connectors.append(u.name)
            if u.kind == "sink" and u.running:
                out.outstanding.append(f"{u.describe()}: a Kafka consumer; move it off Kafka "
                                       "or stop it")
    states = store.all() if store.exists() else {}
    groups = replaced_groups(cfg)
    existing = {g.group_id for g in admin.list_groups()}
    for route in cfg.routes:
        topic = route.topic
        try:
            await_producers_stopped(cfg, admin, store, topic, window=window,
                                    timeout=window + 5.0, qstash=qstash, where=where,
                                    connect=connect)
        except FenceTimeoutError as exc:
            out.outstanding.append(str(exc))
        out.topics.append(topic)
    for group in groups:
        st = states.get(group) or GroupCutover(group=group, bridge_group=bridge_group(cfg, group))
        if st.state is not State.SWITCHED:
            out.outstanding.append(f"group {group!r} is {st.state.value}, not switched; next: "
                                   + " or ".join(f"`migrator cutover {s} {group}`"
                                                 for s in st.next_steps()))
        else:
            topics = routed_topics(cfg, group)
            found = admin.describe_topics(topics)
            parts = [(t, p.partition) for t in topics if t in found
                     for p in found[t].partitions]
            report = verify_group(cfg, st, parts, admin, connection, qstash=qstash)
            if not report.ok:
                out.outstanding.append(f"`migrator cutover verify {group}`: {report.summary()}")
            old = admin.describe_groups([group]).get(group)
            if old is not None and old.members:
                out.outstanding.append(f"old group {group!r} still has {len(old.members)} "
                                       "member(s): its consumers run")
        out.groups += [group, bridge_group(cfg, group), shadow_group(cfg, group)]
    out.groups += [presence_group(cfg), cfg.group]
    out.groups = [g for g in out.groups if g in existing]
    out.kept.append(cfg.cutover_topic)
    if cfg.dead_letter.topic:
        out.kept.append(cfg.dead_letter.topic)
    return out


def delete_routed(admin: GroupOffsetAdmin, plan: Decommission,
                  connect: RestConnection | None = None) -> list[str]:
    """Delete the listed connectors (with ``connect``), the routed topics and the listed groups
    (never the kept topics); returns what was deleted."""
    deleted: list[str] = []
    if plan.connectors and connect is not None:
        deleted += delete_connectors(connect, plan.connectors)
    deleted += [f"topic {t}" for t in admin.delete_topics(plan.topics)]
    deleted += [f"group {g}" for g in admin.delete_groups(plan.groups)]
    return deleted
