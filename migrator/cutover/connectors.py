"""Kafka Connect connectors that touch routed topics: a source connector writing to one is a
Kafka producer (the producers' move waits for it), a sink connector reading one is a consumer
(the decommission waits for it). Read with the audit's :class:`~migrator.audit.connect.ConnectReader`
(GET only); :func:`delete_connectors` is the one write, for `cutover finish --delete`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from migrator.audit.connect import ConnectReader
from migrator.config import RestConnection, redact_url
from migrator.errors import ServiceError

__all__ = ["ConnectorUse", "connector_uses", "delete_connectors"]


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


def delete_connectors(connect: RestConnection, names: Iterable[str]) -> list[str]:
    """Delete these connectors (``DELETE /connectors/{name}``); one already gone counts as
    deleted. Returns what was deleted; raises :class:`ServiceError` naming the first refusal."""
    deleted: list[str] = []
    where = redact_url(connect.url)
    with httpx.Client(base_url=connect.url.rstrip("/") + "/", auth=connect.httpx_auth(),
                      timeout=connect.timeout) as client:
        for name in names:
            try:
                r = client.delete(f"connectors/{quote(name, safe='')}")
            except httpx.HTTPError as exc:
                raise ServiceError(f"Kafka Connect at {where} did not answer deleting connector "
                                   f"{name!r} ({type(exc).__name__}); deleted so far: "
                                   f"{', '.join(deleted) or 'none'}.") from None
            if r.status_code not in (200, 204, 404):
                raise ServiceError(f"Kafka Connect at {where} refused deleting connector "
                                   f"{name!r}: HTTP {r.status_code}; deleted so far: "
                                   f"{', '.join(deleted) or 'none'}.")
            deleted.append(f"connector {name}")
    return deleted
