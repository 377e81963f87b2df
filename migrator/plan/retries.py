"""A route's retries and dead letter, from what the estate shows: its topic's retry and
dead-letter topics, and the error settings of the sink connectors reading it."""

from __future__ import annotations

from dataclasses import dataclass, field

from migrator.inventory import ConnectorInfo, Inventory
from migrator.topic_roles import TopicClass

__all__ = ["Auxiliary", "auxiliary", "config_int", "retry_settings"]


@dataclass
class Auxiliary:
    """Retry and dead-letter topics found for a base topic."""

    retry_topics: list[tuple[str, int | None]] = field(default_factory=list)
    dlq_topics: list[str] = field(default_factory=list)
    connectors: list[ConnectorInfo] = field(default_factory=list)


def auxiliary(inv: Inventory, classes: dict[str, TopicClass]) -> dict[str, Auxiliary]:
    """Per topic: its retry and dead-letter topics and the connectors reading it."""
    names = set(classes)
    out: dict[str, Auxiliary] = {}
    for c in classes.values():
        if c.serves is None:
            continue
        if c.role == "retry":
            out.setdefault(c.serves, Auxiliary()).retry_topics.append((c.name, c.attempt))
        elif c.role == "dead-letter":
            out.setdefault(c.serves, Auxiliary()).dlq_topics.append(c.name)
    for conn in inv.connect.connectors:
        dlq_name = conn.config.get("errors.deadletterqueue.topic.name")
        for topic in conn.topics:
            aux = out.setdefault(topic, Auxiliary())
            aux.connectors.append(conn)
            if dlq_name and dlq_name in names and dlq_name not in aux.dlq_topics:
                aux.dlq_topics.append(dlq_name)
    for aux in out.values():
        aux.retry_topics.sort()
        aux.dlq_topics.sort()
    return out


def retry_settings(aux: Auxiliary | None) -> tuple[int, str | None, str, str]:
    """(retries, retry delay expression, why, dead letter) for a route whose topic has ``aux``."""
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
        timeout = config_int(conn.config.get("errors.retry.timeout"))
        delay_max = config_int(conn.config.get("errors.retry.delay.max.ms")) or 60_000
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


def config_int(value: str | None) -> int | None:
    """A config value as an int (None: unset or not a number)."""
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
