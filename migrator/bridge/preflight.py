"""``migrator bridge check``: what a bridge would do if started now, and what would stop it.

Read-only: Kafka is asked through the admin API (no group is joined, nothing is committed),
QStash through the official SDK's control-plane calls, the Schema Registry with one GET. The
result is data: per partition, where the bridge would start reading (its group's committed
offset, or the start policy's offset), the end offset and so the backlog it would deliver; and
the problems found, each one line naming what is wrong, where, and how to fix it; and warnings
that stop nothing, such as an ordered route whose destination cannot keep order
(:mod:`migrator.bridge.ordering`).

Start offsets follow the bridge's own rules (:func:`migrator.bridge.assignment.start_offsets`):
a committed offset wins; else ``start`` decides (earliest, latest, the first offset at
``start_timestamp``, or ``start_from_group``'s committed offset, earliest where it has none).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import httpx

from migrator.bridge.config import (
    BridgeConfig,
    EnqueueQueueDestination,
    PublishUrlGroupDestination,
)
from migrator.bridge.ordering import order_risks
from migrator.config import KafkaConnection, QStashConnection, redact_url
from migrator.kafka.admin import KafkaAdmin

__all__ = ["PartitionStart", "Preflight", "preflight"]

log = logging.getLogger(__name__)

Partition = tuple[str, int]


@dataclass(frozen=True)
class PartitionStart:
    """Where the bridge would start on one partition."""

    topic: str
    partition: int
    committed: int | None  # the bridge group's committed offset
    start: int  # the next offset the bridge would read
    source: str  # what decided it: committed, earliest, latest, timestamp, group <name>
    earliest: int  # the log start offset (older records were deleted by retention)
    end: int  # the high watermark

    @property
    def backlog(self) -> int:
        """Records the bridge would deliver before it is caught up."""
        return max(0, self.end - max(self.start, self.earliest))


@dataclass(frozen=True)
class Preflight:
    group: str
    partitions: list[PartitionStart] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # would run, but not as one may expect
    checked: list[str] = field(default_factory=list)  # what answered as expected
    # per replaced group: its cutover state (migrator.cutover.gating.GatedGroup.to_json)
    groups: list[dict[str, Any]] = field(default_factory=list)

    @property
    def backlog(self) -> int:
        return sum(p.backlog for p in self.partitions)

    def to_json(self) -> dict[str, Any]:
        """Everything, backlogs included, as JSON-ready data."""
        data = asdict(self)
        for row, part in zip(data["partitions"], self.partitions, strict=True):
            row["backlog"] = part.backlog
        data["backlog"] = self.backlog
        return data


def preflight(
    cfg: BridgeConfig,
    connection: KafkaConnection,
    *,
    qstash: QStashConnection | None = None,
    timeout: float = 30.0,
) -> Preflight:
    """Check ``cfg`` against the live services (read-only)."""
    result = Preflight(cfg.group)
    result.warnings.extend(risk.line() for risk in order_risks(cfg))
    with KafkaAdmin(connection, timeout=timeout) as admin:
        _kafka(cfg, admin, result)
    _gating(cfg, connection, result, timeout)
    if qstash is not None:
        _qstash(cfg, qstash, result)
    _registries(cfg, result)
    return result


def _kafka(cfg: BridgeConfig, admin: KafkaAdmin, result: Preflight) -> None:
    topics = [route.topic for route in cfg.routes]
    wanted = topics + ([cfg.dead_letter.topic] if cfg.dead_letter.topic else [])
    found = admin.describe_topics(wanted)
    for i, route in enumerate(cfg.routes):
        if route.topic not in found:
            result.problems.append(
                f"routes[{i}].topic: topic {route.topic!r} does not exist (or this principal "
                "may not describe it); create it or fix the route."
            )
    if cfg.dead_letter.topic and cfg.dead_letter.topic not in found:
        result.problems.append(
            f"dead_letter.topic: topic {cfg.dead_letter.topic!r} does not exist; create it "
            "before the bridge needs to dead-letter a record (it would stop there)."
        )
    tps: list[Partition] = [
        (name, p.partition) for name in topics if name in found for p in found[name].partitions
    ]
    if not tps:
        return
    result.checked.append(f"Kafka: {len(tps)} partitions of the routes' topics described")
    earliest = admin.list_offsets(tps, "earliest")
    latest = admin.list_offsets(tps, "latest")
    committed = admin.list_group_offsets([cfg.group]).get(cfg.group, {})
    fresh = [tp for tp in tps if committed.get(tp) is None]
    starts, source = _policy_starts(cfg, admin, fresh, earliest, latest)
    for tp in tps:
        low, high = earliest.get(tp, 0), latest.get(tp, 0)
        own = committed.get(tp)
        start, why = (own, "committed") if own is not None else (starts[tp], source)
        result.partitions.append(PartitionStart(tp[0], tp[1], own, start, why, low, high))
        if start < low:
            result.problems.append(
                f"{tp[0]}[{tp[1]}]: the bridge would start at offset {start} ({why}) but "
                f"retention already deleted everything below {low}: {low - start} records are "
                "gone; the bridge starts at the earliest kept one (check the old consumer's "
                "lag and retention before the cutover)."
            )


def _gating(cfg: BridgeConfig, connection: KafkaConnection, result: Preflight,
            timeout: float) -> None:
    from migrator.cutover.gating import earliest_warnings, gated_groups

    committed = {(p.topic, p.partition): p.committed for p in result.partitions}
    backlog: dict[str, int] = {}
    for p in result.partitions:
        backlog[p.topic] = backlog.get(p.topic, 0) + p.backlog
    result.warnings.extend(earliest_warnings(cfg, committed, backlog))
    for gated in gated_groups(cfg, connection, timeout):
        result.groups.append(gated.to_json())
        result.checked.append(gated.line())


def _policy_starts(
    cfg: BridgeConfig,
    admin: KafkaAdmin,
    fresh: list[Partition],
    earliest: dict[Partition, int],
    latest: dict[Partition, int],
) -> tuple[dict[Partition, int], str]:
    """Start offsets for partitions without a committed offset, and what decided them."""
    if not fresh:
        return {}, cfg.start
    if cfg.start == "start_from_group" and cfg.start_from_group:
        old = admin.list_group_offsets([cfg.start_from_group]).get(cfg.start_from_group, {})
        out = {}
        for tp in fresh:
            offset = old.get(tp)
            out[tp] = offset if offset is not None else earliest.get(tp, 0)
        return out, f"group {cfg.start_from_group}"
    if cfg.start == "timestamp" and cfg.start_timestamp is not None:
        at = admin.list_offsets(fresh, int(cfg.start_timestamp.timestamp() * 1000))
        # no record at or after the time: the end, as the bridge does
        return {tp: at[tp] if at.get(tp, -1) >= 0 else latest.get(tp, 0) for tp in fresh}, (
            f"timestamp {_iso(cfg.start_timestamp)}"
        )
    if cfg.start == "latest":
        return {tp: latest.get(tp, 0) for tp in fresh}, "latest"
    return {tp: earliest.get(tp, 0) for tp in fresh}, "earliest"


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _qstash(cfg: BridgeConfig, qstash: QStashConnection, result: Preflight) -> None:
    from qstash import QStash

    from migrator.bridge.routes import check_qstash

    check_qstash(qstash)  # a wrong URL or token is an error of its own (exit 7)
    result.checked.append(f"QStash at {redact_url(qstash.url)}: the token is accepted")
    client = QStash(qstash.bearer, base_url=qstash.url, retry=False)
    try:
        _url_groups(cfg, client, result)
        _fifo_queues(cfg, client, result)
    finally:
        client.http._client.close()  # the SDK's one httpx.Client; the SDK has no close()


def _url_groups(cfg: BridgeConfig, client: Any, result: Preflight) -> None:
    from qstash.errors import QStashError

    seen: set[str] = set()
    for i, route in enumerate(cfg.routes):
        for j, dest in enumerate(route.destinations):
            if not isinstance(dest, PublishUrlGroupDestination) or dest.url_group in seen:
                continue
            seen.add(dest.url_group)
            try:
                group = client.url_group.get(dest.url_group)
            except QStashError:
                group = None
            if group is None or not group.endpoints:
                result.problems.append(
                    f"routes[{i}].destinations[{j}].url_group: QStash has no URL group "
                    f"{dest.url_group!r} with endpoints; `migrator apply` the plan or create it "
                    "(a publish to it would be refused and dead-lettered)."
                )
            else:
                result.checked.append(
                    f"QStash URL group {dest.url_group!r}: {len(group.endpoints)} endpoints"
                )


def _fifo_queues(cfg: BridgeConfig, client: Any, result: Preflight) -> None:
    """Warn when an ordered route's queue exists with parallelism above 1 (it delivers several
    messages at once, so order breaks); queues an enqueue creates have parallelism 1."""
    from qstash.errors import QStashError

    partitions: dict[str, list[int]] = {}
    for part in result.partitions:
        partitions.setdefault(part.topic, []).append(part.partition)
    wanted: dict[str, tuple[int, int]] = {}
    for i, route in enumerate(cfg.routes):
        for j, dest in enumerate(route.destinations):
            if route.ordered and isinstance(dest, EnqueueQueueDestination):
                for p in partitions.get(route.topic, []):
                    wanted.setdefault(dest.queue_name(route.topic, p), (i, j))
    if not wanted:
        return
    try:
        live = {q.name: q for q in client.queue.list()}
    except QStashError as exc:
        result.warnings.append(f"QStash queues could not be listed ({exc}); their parallelism "
                               "is unchecked")
        return
    for name, (i, j) in sorted(wanted.items()):
        queue = live.get(name)
        if queue is not None and queue.parallelism > 1:
            result.warnings.append(
                f"routes[{i}].destinations[{j}].queue: QStash queue {name!r} has parallelism "
                f"{queue.parallelism}: it delivers that many messages at once, so order can "
                "break; set it to 1 (`migrator apply` the plan, or upsert the queue)")
    existing = sum(1 for name in wanted if name in live)
    result.checked.append(f"QStash FIFO queues of ordered routes: {existing} of {len(wanted)} "
                          "exist (an enqueue creates the others with parallelism 1)")


def _registries(cfg: BridgeConfig, result: Preflight) -> None:
    for i, route in enumerate(cfg.routes):
        if route.payload.mode != "decode":
            continue
        base = route.payload.schema_registry_url or os.environ.get("SCHEMA_REGISTRY_URL")
        if not base:
            continue  # the config check at start already names this (exit 3)
        shown = redact_url(base)
        try:
            resp = httpx.get(base.rstrip("/") + "/subjects", timeout=10.0)
        except httpx.HTTPError as exc:
            result.problems.append(
                f"routes[{i}].payload.schema_registry_url: {shown} is unreachable ({exc}); "
                "decode routes would dead-letter every record as undecodable."
            )
            continue
        if resp.status_code != 200:
            result.problems.append(
                f"routes[{i}].payload.schema_registry_url: {shown} answered HTTP "
                f"{resp.status_code} to GET /subjects; check the URL and its credentials."
            )
        else:
            result.checked.append(f"Schema Registry at {shown}: answering")
