"""Kafka Connect connectors that touch routed topics: a source connector writing to one is a
Kafka producer (the producers' move waits for it), a sink connector reading one is a consumer
(the decommission waits for it). Read with the audit's :class:`~migrator.audit.connect.ConnectReader`
(GET only)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from migrator.audit.connect import ConnectReader
from migrator.config import RestConnection, redact_url

__all__ = ["ConnectorUse", "connector_uses"]


@dataclass(frozen=True)
class ConnectorUse:
    """One connector and the routed topics it writes (source) or reads (sink)."""

    name: str
    kind: str  # source | sink | unknown
    state: str  # the connector's state; RUNNING when it or any task runs
    topics: tuple[str, ...]

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"

    def describe(self) -> str:
        verb = {"source": "writes to", "sink": "reads"}.get(self.kind, "uses")
        return (f"{self.kind} connector {self.name!r} ({self.state}) {verb} "
                + ", ".join(self.topics))


def connector_uses(connect: RestConnection, topics: Iterable[str],
                   ) -> tuple[list[ConnectorUse], str | None]:
    """Connectors naming any of ``topics`` and, when Connect could not be read, why."""
    wanted = set(topics)
    with ConnectReader(connect) as reader:
        info = reader.read(keep=lambda _name, used: bool(wanted & set(used)))
    if not info.status.available:
        return [], (f"Kafka Connect at {redact_url(connect.url)} could not be read "
                    f"({info.status.error})")
    out = []
    for c in info.connectors:
        running = c.state == "RUNNING" or "RUNNING" in c.task_states
        out.append(ConnectorUse(c.name, c.kind, "RUNNING" if running else c.state,
                                tuple(t for t in c.topics if t in wanted)))
    return out, None
