"""What each topic of an estate is for: the one classification the audit and the plan share.

Every topic has one :data:`TopicRole`, decided in this order:

``internal``
    Kafka's own topics (the broker's internal flag, ``__consumer_offsets``,
    ``__transaction_state``, any ``__``/``_`` prefix: ``_schemas``, ``_confluent-*``,
    ``_connect-*``) and Kafka Connect's config/offset/status topics (``connect-configs``,
    ``connect-offsets``, ``connect-status`` and their ``connect_``/``-config``/``-offset``
    variants). Nothing to migrate, no findings.
``streams-internal``
    A Kafka Streams changelog or repartition topic: ``<application.id>-<name>-changelog``
    (or ``-repartition``) where a consumer group named ``<application.id>`` exists, or a name
    Streams generated (``-KSTREAM-…-0000000003-changelog``). A plain topic that merely ends in
    ``-changelog`` (a CDC feed) is data.
``retry``
    ``<base>-retry`` / ``<base>.retry.<N>`` (any of ``.``, ``_``, ``-``) where ``<base>`` is a
    topic of the estate: replaced by QStash's retries.
``dead-letter``
    A name made of a dead-letter word (``dlq``, ``dlt``, ``dead-letter(s)``, ``deadletter``,
    ``dead_letter_queue``...) before or after the base (``orders.DLQ``, ``dlq.orders``,
    ``orders-dead-letters``) or alone, or a connector's ``errors.deadletterqueue.topic.name``:
    replaced by QStash's DLQ.
``data``
    Everything else: what the migration moves.

A topic's readers are the consumer groups with a committed offset on it or a member assigned
to it (:func:`readers`).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Literal

from migrator.inventory import ConsumerGroupInfo, Inventory

__all__ = [
    "TopicClass",
    "TopicRole",
    "classify",
    "dead_letter_base",
    "is_internal",
    "is_streams_internal",
    "readers",
    "retry_base",
    "streams_applications",
]

TopicRole = Literal["internal", "streams-internal", "retry", "dead-letter", "data"]

_CONNECT_INTERNAL = re.compile(r"^connect(?:[-_].*)?[-_](?:configs?|offsets?|status)$")
_STREAMS_RE = re.compile(r".+-(changelog|repartition)$")
# Names Kafka Streams generates for unnamed stores and repartitions.
_STREAMS_GENERATED_RE = re.compile(r"-(KSTREAM|KTABLE)-[A-Z-]*\d{10}-(changelog|repartition)$")
_DLQ_WORD = r"(?:dlq|dlt|dead[._-]?letters?(?:[._-]?queue)?)"
_DLQ_RE = re.compile(
    rf"^(?:{_DLQ_WORD}|{_DLQ_WORD}[._-](?P<a>.+)|(?P<b>.+?)[._-]{_DLQ_WORD})$", re.IGNORECASE
)
_RETRY_RE = re.compile(r"^(?P<base>.+?)[._-]retry(?:[._-](?P<n>\d+))?$", re.IGNORECASE)


@dataclass(frozen=True)
class TopicClass:
    """One topic's role; for a retry or dead-letter topic, the topic it serves (when the estate
    has it) and a retry topic's attempt number (``-retry-2``: 2)."""

    name: str
    role: TopicRole
    serves: str | None = None
    attempt: int | None = None


def is_internal(name: str, kafka_internal: bool = False) -> bool:
    """Kafka's, the registry's or Connect's own topic (see the module docstring)."""
    return kafka_internal or name.startswith("_") or bool(_CONNECT_INTERNAL.match(name))


def is_streams_internal(topic: str, groups: Collection[str] = ()) -> bool:
    """A Kafka Streams changelog or repartition topic of an application whose group exists, or
    a name Streams generated."""
    if not _STREAMS_RE.match(topic):
        return False
    if _STREAMS_GENERATED_RE.search(topic):
        return True
    parts = topic.split("-")
    return any("-".join(parts[:i]) in groups for i in range(1, len(parts) - 1))


def streams_applications(groups: Collection[str], topics: Iterable[str]) -> set[str]:
    """The groups that are Kafka Streams applications: one of their internal topics exists."""
    apps: set[str] = set()
    for name in topics:
        if _STREAMS_RE.match(name):
            parts = name.split("-")
            apps.update(p for p in ("-".join(parts[:i]) for i in range(1, len(parts))) if p in groups)
    return apps


def dead_letter_base(name: str) -> str | None:
    """``None`` unless ``name`` is a dead-letter topic's; then the topic it names ("" if none)."""
    match = _DLQ_RE.match(name)
    if match is None:
        return None
    return match.group("a") or match.group("b") or ""


def retry_base(name: str) -> tuple[str, int | None] | None:
    """``(base, attempt)`` when ``name`` has a retry topic's shape, else ``None``."""
    match = _RETRY_RE.match(name)
    if match is None:
        return None
    n = match.group("n")
    return match.group("base"), int(n) if n is not None else None


def readers(inv: Inventory) -> dict[str, list[ConsumerGroupInfo]]:
    """Topic -> the groups reading it (a committed offset or an assigned member), by group id."""
    by_topic: dict[str, dict[str, ConsumerGroupInfo]] = {}
    for group in inv.consumer_groups:
        for topic in {*group.topics, *(o.topic for o in group.offsets)}:
            by_topic.setdefault(topic, {})[group.group_id] = group
    return {t: [gs[k] for k in sorted(gs)] for t, gs in by_topic.items()}


def classify(inv: Inventory) -> dict[str, TopicClass]:
    """Every topic of the inventory with its role."""
    names = {t.name for t in inv.topics}
    groups = {g.group_id for g in inv.consumer_groups}
    connector_dlqs: dict[str, str | None] = {}
    for conn in inv.connect.connectors:
        dlq = conn.config.get("errors.deadletterqueue.topic.name")
        if dlq:
            served = [t for t in conn.topics if t in names]
            connector_dlqs.setdefault(dlq, served[0] if served else None)
    out: dict[str, TopicClass] = {}
    for topic in inv.topics:
        out[topic.name] = _classify(topic.name, topic.internal, names, groups, connector_dlqs)
    return out


def _classify(name: str, kafka_internal: bool, names: Collection[str], groups: Collection[str],
              connector_dlqs: dict[str, str | None]) -> TopicClass:
    if is_internal(name, kafka_internal):
        return TopicClass(name, "internal")
    if is_streams_internal(name, groups):
        return TopicClass(name, "streams-internal")
    retry = retry_base(name)
    if retry is not None and retry[0] in names:
        return TopicClass(name, "retry", serves=retry[0], attempt=retry[1])
    if name in connector_dlqs:
        return TopicClass(name, "dead-letter", serves=connector_dlqs[name])
    base = dead_letter_base(name)
    if base is not None:
        return TopicClass(name, "dead-letter", serves=base if base in names else None)
    return TopicClass(name, "data")
