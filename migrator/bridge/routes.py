"""From configuration to running routes: a codec per topic and a sink per destination.

Each destination gets a fixed-width tag (:func:`connectors.sink.route_tag`) over the route name
and what the destination is, so its dedup ids (``kb-<tag>-<topic>-<partition>-<offset>``) stay
the same across restarts and differ between destinations of one record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import httpx

from connectors.codecs import (
    BytesCodec,
    Codec,
    RegistryLookup,
    SchemaLookup,
    SchemaRegistryCodec,
    registry_lookup,
)
from connectors.http_sink import HttpSink
from connectors.qstash_sink import QStashSink
from connectors.sink import Sink, dedup_prefix, route_tag
from connectors.workflow_sink import WorkflowSink
from migrator.bridge.config import (
    BridgeConfig,
    Destination,
    DirectHttpDestination,
    EnqueueQueueDestination,
    PublishUrlGroupDestination,
    Route,
    WorkflowDestination,
)
from migrator.config import QStashConnection, redact_url
from migrator.errors import ConfigError, ServiceError

__all__ = ["DestinationRuntime", "RouteRuntime", "build_routes", "check_qstash", "identity"]


@dataclass(slots=True)
class DestinationRuntime:
    index: int  # position in the bridge's flat list of sinks
    name: str  # metrics / dead-letter label
    sink: Sink
    id_prefix: str  # "kb-<tag>-<topic>-"
    batch_count: int  # records per batch (batch.count, else the destination kind's default)


@dataclass(slots=True)
class RouteRuntime:
    route: Route
    codec: Codec
    destinations: list[DestinationRuntime]
    lookup: RegistryLookup | None = None  # made for this route: closed with the bridge


def identity(dest: Destination) -> str:
    """What a destination is, for its dedup-id tag (changing it starts new dedup ids)."""
    if isinstance(dest, DirectHttpDestination):
        return f"direct-http {dest.url}"
    if isinstance(dest, PublishUrlGroupDestination):
        return f"publish-url-group {dest.url_group}"
    if isinstance(dest, EnqueueQueueDestination):
        return f"enqueue-queue {dest.queue} {dest.url}"
    return f"{dest.kind} {dest.url}"


def _registry_url(route: Route) -> str:
    url = route.payload.schema_registry_url or os.environ.get("SCHEMA_REGISTRY_URL")
    if not url:
        raise ConfigError(
            f"route {route.route_name!r}: payload mode decode needs "
            "payload.schema_registry_url or SCHEMA_REGISTRY_URL."
        )
    return url


def _codec(route: Route, schema_lookup: SchemaLookup | None) -> Codec:
    if route.payload.mode == "bytes":
        return BytesCodec()
    lookup = schema_lookup if schema_lookup is not None else registry_lookup(_registry_url(route))
    return SchemaRegistryCodec(lookup, decimal=route.payload.decimal)


def _sink(
    route: Route,
    dest: Destination,
    name: str,
    client: httpx.Client,
    qstash: QStashConnection | None,
    timeout: float,
) -> Sink:
    if isinstance(dest, DirectHttpDestination):
        return HttpSink(dest, client=client, name=name, stop_on_failure=route.ordered)
    if qstash is None:
        raise ConfigError(
            f"route {route.route_name!r} publishes through QStash: set qstash.token or QSTASH_TOKEN."
        )
    if isinstance(dest, WorkflowDestination):
        return WorkflowSink(dest, base_url=qstash.url, token=qstash.bearer, client=client,
                            name=name, timeout=timeout)
    return QStashSink(dest, base_url=qstash.url, token=qstash.bearer, client=client, name=name,
                      timeout=timeout)


def build_routes(
    config: BridgeConfig,
    client: httpx.Client,
    qstash: QStashConnection | None,
    schema_lookup: SchemaLookup | None = None,
) -> dict[str, RouteRuntime]:
    """topic -> its route, codec and sinks (sinks numbered across all routes)."""
    routes: dict[str, RouteRuntime] = {}
    index = 0
    for route in config.routes:
        dests = []
        many = len(route.destinations) > 1
        for n, dest in enumerate(route.destinations):
            name = f"{route.route_name}/{n}" if many else route.route_name
            tag = route_tag(route.route_name, identity(dest))
            sink = _sink(route, dest, name, client, qstash, config.qstash.request_timeout)
            dests.append(DestinationRuntime(
                index, name, sink,
                dedup_prefix(tag, route.topic),
                config.batch.count_for(direct=isinstance(dest, DirectHttpDestination)),
            ))
            index += 1
        made = None  # a lookup made for this route, closed with the bridge
        if route.payload.mode != "bytes" and schema_lookup is None:
            made = registry_lookup(_registry_url(route))
        routes[route.topic] = RouteRuntime(route, _codec(route, schema_lookup or made), dests, made)
    return routes


def check_qstash(qstash: QStashConnection) -> None:
    """Fail fast on a wrong QStash URL or token, before consuming anything.

    One control-plane call (``GET /v2/keys``, as the ``qstash`` SDK's ``signing_key.get()``),
    made with httpx because the SDK's errors carry the status only in their text; raises
    ServiceError (exit 7) naming the problem, never the token.
    """
    shown = redact_url(qstash.url)
    try:
        resp = httpx.get(f"{qstash.url.rstrip('/')}/v2/keys", timeout=10.0,
                         headers={"Authorization": f"Bearer {qstash.bearer}"})
    except httpx.HTTPError as exc:
        raise ServiceError(f"QStash at {shown} is unreachable ({exc}); check qstash.url.") from None
    status = resp.status_code
    if resp.is_success:
        return
    hint = "check qstash.token / QSTASH_TOKEN" if status in (401, 403) else "check qstash.url"
    body = resp.text[:200].strip()
    raise ServiceError(
        f"QStash at {shown} refused the bridge: HTTP {status}" + (f": {body}" if body else "")
        + f" ({hint}).", status=status,
    )
