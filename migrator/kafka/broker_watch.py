"""Noticing a Kafka client stranded without any broker, from librdkafka's statistics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["STRANDED_AFTER", "BrokerWatch", "known_brokers"]

# Seconds a consumer may know no broker at all before it is replaced (BrokerWatch).
STRANDED_AFTER = 10.0


def known_brokers(stats: Mapping[str, Any]) -> int:
    """The brokers a client can talk to, from its statistics (librdkafka's ``stats_cb`` JSON):
    the bootstrap servers and the brokers learned from metadata; not the logical
    ``GroupCoordinator`` handle or the internal one."""
    brokers = stats.get("brokers")
    if not isinstance(brokers, Mapping):
        return 0
    return sum(1 for b in brokers.values()
               if isinstance(b, Mapping) and b.get("source") in ("configured", "learned"))


class BrokerWatch:
    """Tells a client that has known no broker for ``after`` seconds: it is stranded.

    librdkafka (2.10 and later) drops every broker a metadata response does not list. A broker
    in controlled shutdown answers Metadata without itself, so a client of a single-broker
    cluster (or of brokers all restarting) can be left with no broker at all. It should then
    re-bootstrap from ``bootstrap.servers``; seen here (librdkafka 2.16, Kafka 4.1 KRaft) it
    sometimes does not: a re-bootstrap scheduled when the last broker went down appears to be
    cancelled by the metadata response handled at the same moment (a successful response stops
    the re-bootstrap timer, and its in-progress flag is only cleared when the timer fires), and
    none is scheduled again. The client then sends nothing, finds no coordinator and owns no
    partition until it is replaced. A real outage
    does not look like this: the client keeps its brokers and keeps reconnecting to them.
    """

    def __init__(self, after: float = STRANDED_AFTER) -> None:
        self.after = after
        self._none_since: float | None = None

    def observe(self, brokers: int, now: float) -> None:
        if brokers:
            self._none_since = None
        elif self._none_since is None:
            self._none_since = now

    def stranded(self, now: float) -> bool:
        return self._none_since is not None and now - self._none_since >= self.after

    def reset(self) -> None:
        self._none_since = None
