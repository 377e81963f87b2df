"""The plan file (``plan.yaml``): what each topic and consumer group becomes in QStash, and why.

The plan is data: a frozen pydantic model, unknown fields rejected, written by ``migrator plan``
and read (possibly after human edits) by ``migrator apply``. ``migrator plan schema`` prints
``Plan.model_json_schema()``. :func:`load_plan` reports any problem as one line naming the file,
the line and the field path.

Endpoints the user has not mapped yet hold a visible placeholder (:data:`PLACEHOLDER_PREFIX`);
``apply`` refuses to run while any remains (:meth:`Plan.placeholders`).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from migrator.qstash_tiers import TierName
from migrator.yamlfile import load_model

__all__ = [
    "PLACEHOLDER_PREFIX",
    "Blocker",
    "CostEstimate",
    "CostLine",
    "GroupTarget",
    "OrderingSpec",
    "Pattern",
    "Plan",
    "QueueSpec",
    "Resources",
    "ReviewedState",
    "RouteSpec",
    "ScheduleSpec",
    "SourceInfo",
    "UrlGroupEndpointSpec",
    "UrlGroupSpec",
    "is_placeholder",
    "load_plan",
    "placeholder",
]

PLACEHOLDER_PREFIX = "FILL-ME:"

Pattern = Literal[
    "publish",  # one group: publish to its endpoint
    "url_group",  # several groups: a URL group, one endpoint per group
    "fifo_queue",  # ordering: FIFO queues with parallelism 1, each partition to one queue
    "flow_control",  # best-effort ordering (opt-in): a flow-control key, parallelism 1
    "workflow",  # multi-step or stateful consumer: an Upstash Workflow
    "blocked",  # not migratable as is: see blockers
    "absorbed",  # a retry or dead-letter topic, replaced by QStash retries / DLQ
    "unconsumed",  # no consumer group reads it: nothing to route
    "internal",  # Kafka/Connect/registry infrastructure: not migrated
]

_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_URL = re.compile(r"^https?://\S+$")


def placeholder(what: str) -> str:
    """The visible placeholder written where an endpoint URL is still unknown."""
    return f"{PLACEHOLDER_PREFIX} {what}"


def is_placeholder(value: str | None) -> bool:
    return value is not None and value.startswith(PLACEHOLDER_PREFIX)


def _check_target(value: str) -> str:
    if is_placeholder(value) or _URL.match(value):
        return value
    raise ValueError(f"{value!r} is not an http(s) URL; write it like https://example.com/hook")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r}: QStash names may only hold letters, digits, '-', '_', '.'")
    return value


def _check_cron(value: str) -> str:
    """A 5-field cron, optionally ``CRON_TZ=<zone> `` first (what QStash accepts)."""
    expr = value.strip()
    if expr.startswith("CRON_TZ="):
        zone, _, expr = expr.partition(" ")
        try:
            ZoneInfo(zone.removeprefix("CRON_TZ="))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r}: unknown time zone in {zone!r}") from None
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise ValueError(f"{value!r} is not a 5-field cron expression; write it like '*/5 * * * *'")
    return value


Target = Annotated[str, AfterValidator(_check_target)]
Name = Annotated[str, AfterValidator(_check_name)]
Cron = Annotated[str, AfterValidator(_check_cron)]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class GroupTarget(_Spec):
    """Where one consumer group's copy of a topic goes."""

    group: str
    """The Kafka consumer group this endpoint replaces."""
    endpoint: Target
    """Endpoint URL (or a FILL-ME placeholder until mapped)."""
    workflow: bool = False
    """The endpoint is an Upstash Workflow (a run per record)."""
    reason: str = ""
    """Why this group maps this way, in one line."""


class OrderingSpec(_Spec):
    """How order is kept at the far end."""

    mode: Literal["fifo_queue", "flow_control"]
    queue: Name | None = None
    """Base name of the FIFO queues (mode fifo_queue): partition p goes to `<queue>-<p mod
    queues>`, or `<queue>.<group>-<p mod queues>` when several groups read the topic."""
    queues: int | None = Field(default=None, ge=1)
    """FIFO queues per group (mode fifo_queue), at most one per partition."""
    key: str | None = None
    """Flow-control key template ({topic}, {partition}, {key}) for the best-effort groups and
    workflows of the route (parallelism 1: order can break on a retry)."""
    parallelism: int = Field(default=1, ge=1)
    best_effort: list[str] = Field(default_factory=list)
    """Groups that chose `ordering: best_effort` in the endpoint file (or workflows): a
    flow-control key instead of queues, so a retried record arrives after later ones."""
    capacity: dict[str, float] = Field(default_factory=dict)
    """Group -> records/s its queues deliver (queues / endpoint round trip, for even partitions)."""


class RouteSpec(_Spec):
    """One topic: the chosen pattern, its reason and the delivery settings."""

    topic: str
    pattern: Pattern
    reason: str
    """One line: why this pattern."""
    targets: list[GroupTarget] = Field(default_factory=list)
    url_group: Name | None = None
    """URL group fanning the topic out (pattern url_group)."""
    ordering: OrderingSpec | None = None
    retries: int = Field(default=3, ge=0, le=100)
    """Upstash-Retries per message."""
    retry_delay: str | None = None
    """Upstash-Retry-Delay expression in ms over `retried` (None: QStash's backoff)."""
    retry_reason: str = ""
    """Where the retry settings come from."""
    failure_callback: Target | None = None
    """Called once retries are exhausted (the message also lands in QStash's DLQ)."""
    dead_letter: str = "QStash DLQ"
    """Where failed messages end up."""
    rate: int | None = Field(default=None, ge=1)
    """Flow-control rate (calls per second) from observed throughput with headroom."""
    parallelism: int | None = Field(default=None, ge=1)
    """Flow-control parallelism (unordered routes): Kafka's consumer concurrency."""
    decode: Literal["bytes", "decode"] = "bytes"
    """decode: Schema-Registry framed values become JSON; bytes: passed through."""
    tombstones: Literal["skip", "forward_empty", "dead_letter"] = "skip"
    records_per_second: float | None = None
    """Observed throughput (from the inventory)."""
    subjects: list[str] = Field(default_factory=list)
    """Registry subjects of the values, for typed scaffolds."""


class QueueSpec(_Spec):
    """A QStash queue the plan manages."""

    name: Name
    parallelism: int = Field(default=1, ge=1)
    paused: bool = False


class UrlGroupEndpointSpec(_Spec):
    name: Name
    url: Target


class UrlGroupSpec(_Spec):
    """A QStash URL group the plan manages, with every endpoint it must hold."""

    name: Name
    endpoints: list[UrlGroupEndpointSpec] = Field(min_length=1)


class ScheduleSpec(_Spec):
    """A QStash schedule the plan manages (a periodic producer, e.g. a source connector)."""

    schedule_id: Name
    destination: Target
    cron: Cron = Field(description="5-field cron, optionally prefixed with CRON_TZ=<zone>.")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    body: str | None = None
    retries: int = Field(default=3, ge=0, le=100)
    reason: str = ""


def _dupes(names: list[str]) -> list[str]:
    return sorted(n for n, c in Counter(names).items() if c > 1)


class Resources(_Spec):
    """The QStash resources apply creates, updates (and with --prune, deletes)."""

    queues: list[QueueSpec] = Field(default_factory=list)
    url_groups: list[UrlGroupSpec] = Field(default_factory=list)
    schedules: list[ScheduleSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Resources:
        for kind, names in (
            ("queue", [q.name for q in self.queues]),
            ("URL group", [g.name for g in self.url_groups]),
            ("schedule", [s.schedule_id for s in self.schedules]),
        ):
            dupes = _dupes(names)
            if dupes:
                raise ValueError(f"{kind} {', '.join(dupes)} is declared more than once")
        for group in self.url_groups:
            dupes = _dupes([e.name for e in group.endpoints])
            if dupes:
                raise ValueError(f"URL group {group.name}: endpoint {', '.join(dupes)} is "
                                 "declared more than once")
        return self


class Blocker(_Spec):
    """Something that does not fit as is: what, why, and the remedy."""

    code: str
    severity: Literal["blocker", "warning"] = "blocker"
    object: str
    message: str
    remedy: str


class CostLine(_Spec):
    topic: str
    records_per_second: float | None
    records_in_topic: int
    fan_out: int
    messages_per_day: float
    monthly_usd: float


class CostEstimate(_Spec):
    """The estate's messages/day (the audit's estimate), x (1 + retry rate), priced for the
    chosen QStash plan."""

    qstash_plan: TierName
    retry_rate: float
    messages_per_day: float
    """The volume estimate shared with the audit (migrator.volume): no retries."""
    monthly_usd: float
    messages_with_retries_per_day: float = 0.0
    """messages_per_day x (1 + retry_rate): what is priced."""
    volume_basis: str = ""
    """Where messages_per_day comes from and how it was measured."""
    basis: str
    """How the monthly figure was computed."""
    lines: list[CostLine] = Field(default_factory=list)


class ReviewedState(_Spec):
    """Fingerprints of the live QStash resources the plan was reviewed against."""

    url: str
    read_at: str
    fingerprints: dict[str, str] = Field(default_factory=dict)
    """resource id (queue:NAME, url_group:NAME, schedule:ID) -> fingerprint."""


class SourceInfo(_Spec):
    cluster_id: str | None = None
    bootstrap_servers: str
    inventory: str | None = None
    inventory_generated_at: str | None = None
    schema_registry_url: str | None = None


class Plan(_Spec):
    """The whole plan file."""

    version: Literal[1] = 1
    generated_at: str
    tool_version: str
    qstash_plan: TierName = "payg"
    prefix: str = ""
    """Only live resources whose names start with this are pruned."""
    source: SourceInfo
    routes: list[RouteSpec] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    blockers: list[Blocker] = Field(default_factory=list)
    cost: CostEstimate | None = None
    reviewed_state: ReviewedState | None = None

    def placeholders(self) -> list[str]:
        """Every place still holding a FILL-ME placeholder, as 'where: text'."""
        found: list[str] = []
        for route in self.routes:
            for target in route.targets:
                if is_placeholder(target.endpoint):
                    found.append(f"routes[{route.topic}].group[{target.group}]: {target.endpoint}")
            if is_placeholder(route.failure_callback):
                found.append(f"routes[{route.topic}].failure_callback: {route.failure_callback}")
        for group in self.resources.url_groups:
            for ep in group.endpoints:
                if is_placeholder(ep.url):
                    found.append(f"url_group[{group.name}].endpoint[{ep.name}]: {ep.url}")
        for sched in self.resources.schedules:
            if is_placeholder(sched.destination):
                found.append(f"schedule[{sched.schedule_id}]: {sched.destination}")
        return found


def load_plan(path: str | Path) -> Plan:
    """Read and validate a plan file; ConfigError naming file, line and field on any problem."""
    return load_model(path, Plan, "plan file", "migrator plan schema")
