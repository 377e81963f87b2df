"""The producers' move, per topic: may the applications publish to QStash directly now?

Only when (1) the topic's end offsets have not moved for a whole window (the Kafka producers
are stopped; a producer still writing is named with the partitions it moved), (2) every group
of the topic has lag 0 where it is authoritative (the bridge group of a switched group, the old
group otherwise, the bridge's own group for destinations that replace no group), and (3) QStash
holds nothing for the topic under the cutover label of any switched group (no message created,
being delivered or between retries), and (4) with a Kafka Connect URL, no source connector
writing to the topic runs (it is a Kafka producer; named). Then nothing published directly can overtake or be
overtaken by a bridged record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from migrator.bridge.config import BridgeConfig, DirectHttpDestination
from migrator.config import QStashConnection, RestConnection
from migrator.cutover.connectors import connector_uses
from migrator.cutover.qstash_logs import LogReader, coordinate
from migrator.cutover.scope import bridge_group, cutover_label, replaced_groups, routed_topics
from migrator.cutover.state import GroupCutover, State
from migrator.cutover.store import CutoverStore
from migrator.errors import ConfigError, FenceTimeoutError
from migrator.kafka.admin import KafkaAdmin

__all__ = ["ProducersCheck", "await_producers_stopped", "check_drained"]

_FINAL = ("DELIVERED", "FAILED", "CANCELED")


@dataclass
class ProducersCheck:
    """One look at a topic: what is still outstanding before direct publishing may start."""

    topic: str
    ends: dict[int, int]
    lags: dict[str, int] = field(default_factory=dict)  # group (where authoritative) -> lag
    in_qstash: dict[str, int] = field(default_factory=dict)  # label -> messages pending
    connectors: list[str] = field(default_factory=list)  # running source connectors, or why
    # Connect could not be read

    def outstanding(self) -> list[str]:
        out = list(self.connectors)
        out += [f"group {g} has lag {n}" for g, n in sorted(self.lags.items()) if n]
        out += [f"QStash still holds {n} message(s) labelled {label}"
                for label, n in sorted(self.in_qstash.items()) if n]
        return out


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _pending(reader: LogReader, label: str, topic: str, since_ms: int) -> int:
    """Messages of ``topic`` under ``label`` QStash still holds: created and not yet delivered,
    failed or cancelled (each message logs each of those states once), counted page by page
    (nothing kept per message)."""
    def count(state: str) -> int:
        return sum(1 for entry in reader.logs(label=label, state=state, from_ms=since_ms)
                   if (c := coordinate(entry)) is not None and c[0] == topic)

    return max(0, count("CREATED") - sum(count(s) for s in _FINAL))


def check_drained(cfg: BridgeConfig, admin: KafkaAdmin, store: CutoverStore, topic: str,
                  *, qstash: QStashConnection | None, where: str = "bridge config",
                  client: httpx.Client | None = None,
                  connect: RestConnection | None = None) -> ProducersCheck:
    """Lag per group of ``topic``, what QStash still holds for it, and (``connect``) the
    source connectors writing to it that run."""
    if topic not in [r.topic for r in cfg.routes]:
        raise ConfigError(f"{where}: no route reads topic {topic!r}; routed topics: "
                          f"{', '.join(r.topic for r in cfg.routes)}.")
    found = admin.describe_topics([topic]).get(topic)
    if found is None:
        raise ConfigError(f"topic {topic!r} does not exist in Kafka.")
    parts = [(topic, p.partition) for p in found.partitions]
    ends = admin.list_offsets(parts, "latest")
    check = ProducersCheck(topic, {p: ends.get((topic, p), 0) for _t, p in parts})
    if connect is not None:
        uses, error = connector_uses(connect, [topic])
        check.connectors = [f"{u.describe()}: a Kafka producer; stop or delete it" for u in uses
                            if u.kind != "sink" and u.running]
        if error is not None:
            check.connectors.append(f"{error}: cannot tell whether a source connector writes "
                                    f"to {topic}")
    states = store.all() if store.exists() else {}
    authoritative: list[str] = []
    labels: list[tuple[str, int]] = []
    for group in replaced_groups(cfg):
        if topic not in routed_topics(cfg, group):
            continue
        st = states.get(group) or GroupCutover(group=group, bridge_group=bridge_group(cfg, group))
        if st.state in (State.SWITCHED, State.SWITCHING):
            authoritative.append(st.bridge_group)
            if st.handoff_at and any(not isinstance(d, DirectHttpDestination)
                                     for r in cfg.routes if r.topic == topic
                                     for d in r.destinations if d.replaces_group == group):
                labels.append((cutover_label(group, max(1, st.switches)), _ms(st.handoff_at)))
        else:
            authoritative.append(group)
    route = next(r for r in cfg.routes if r.topic == topic)
    if any(d.replaces_group is None for d in route.destinations):
        authoritative.append(cfg.group)
    committed = admin.list_group_offsets(authoritative)
    for g in authoritative:
        offsets = committed.get(g, {})
        check.lags[g] = sum(max(0, end - (offsets.get(tp) or 0)) for tp, end in ends.items())
    if labels:
        if qstash is None:
            raise ConfigError(f"topic {topic!r} is delivered through QStash but no QStash token "
                              "is configured (qstash.token or QSTASH_TOKEN).")
        own = client is None
        http = client or httpx.Client(timeout=30.0)
        try:
            reader = LogReader(qstash.url, qstash.bearer, http)
            for label, since in labels:
                check.in_qstash[label] = _pending(reader, label, topic, since - 60_000)
        finally:
            if own:
                http.close()
    return check


def await_producers_stopped(
    cfg: BridgeConfig, admin: KafkaAdmin, store: CutoverStore, topic: str, *,
    window: float, timeout: float, qstash: QStashConnection | None, poll: float = 0.5,
    where: str = "bridge config", on_wait: Callable[[str], None] | None = None,
    connect: RestConnection | None = None,
) -> ProducersCheck:
    """Wait until ``topic``'s end offsets stay unchanged for ``window`` seconds and nothing is
    outstanding (:meth:`ProducersCheck.outstanding`); FenceTimeoutError at ``timeout`` naming
    the partitions that moved (a producer still writing) or what is outstanding."""
    say = on_wait or (lambda _text: None)
    deadline = time.monotonic() + timeout
    first = check_drained(cfg, admin, store, topic, qstash=qstash, where=where,
                          connect=connect)
    baseline, quiet_since = first.ends, time.monotonic()
    moved: dict[int, tuple[int, int]] = {}
    last = first
    while True:
        now = time.monotonic()
        if now - quiet_since >= window:
            last = check_drained(cfg, admin, store, topic, qstash=qstash, where=where,
                          connect=connect)
            if last.ends != baseline:
                moved = {p: (baseline.get(p, 0), e) for p, e in last.ends.items()
                         if e != baseline.get(p, 0)}
                baseline, quiet_since = last.ends, time.monotonic()
                say(f"{topic} moved: " + ", ".join(f"[{p}] {a} -> {b}"
                                                   for p, (a, b) in sorted(moved.items())))
            elif not last.outstanding():
                return last
            else:
                moved = {}  # quiet for a whole window: the producers did stop
        if time.monotonic() >= deadline:
            seen = []
            if moved:
                seen.append("Kafka producers still write: " + ", ".join(
                    f"{topic}[{p}] {a} -> {b}" for p, (a, b) in sorted(moved.items())))
            seen += last.outstanding()
            raise FenceTimeoutError(
                f"topic {topic!r} is not ready for direct publishing after {timeout:g}s. Seen: "
                + ("; ".join(seen) or f"end offsets moved within the last {window:g}s")
                + ". Stop its Kafka producers, let the bridge drain, and rerun.")
        time.sleep(poll)
        current = admin.list_offsets([(topic, p) for p in baseline], "latest")
        ends = {p: current.get((topic, p), 0) for p in baseline}
        if ends != baseline:
            moved = {p: (baseline[p], e) for p, e in ends.items() if e != baseline[p]}
            say(f"{topic} moved: " + ", ".join(f"[{p}] {a} -> {b}"
                                               for p, (a, b) in sorted(moved.items())))
            baseline, quiet_since = ends, time.monotonic()
