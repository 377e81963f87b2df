"""HTTP handlers: URL groups (topics) and their endpoints."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from qstash_server.api.common import (
    RouteSpec,
    broker_of,
    empty,
    json_body,
    listing,
    named_action,
    named_answer,
)
from qstash_server.problems import ApiError

__all__ = [
    "ROUTES",
    "delete_group",
    "get_group",
    "list_groups",
    "remove_endpoints",
    "upsert_endpoints",
]


async def _endpoints(request: Request) -> list[dict[str, str]]:
    body = await json_body(request, default={})
    if not isinstance(body, dict) or not isinstance(body.get("endpoints"), list):
        raise ApiError(400, "'endpoints' (a list of {url, name}) is required")
    endpoints = body["endpoints"]
    if not endpoints or not all(isinstance(e, dict) for e in endpoints):
        raise ApiError(400, "'endpoints' must be a non-empty list of objects")
    return [{k: str(v) for k, v in e.items() if v is not None} for e in endpoints]


async def upsert_endpoints(request: Request) -> Response:
    b = broker_of(request)
    b.upsert_endpoints(request.path_params["name"], await _endpoints(request))
    return empty()


async def remove_endpoints(request: Request) -> Response:
    b = broker_of(request)
    b.remove_endpoints(request.path_params["name"], await _endpoints(request))
    return empty()


list_groups = listing(lambda b: b.list_groups())
get_group = named_answer(lambda b, name: b.get_group(name).to_api())
delete_group = named_action(lambda b, name: b.delete_group(name))


ROUTES: list[RouteSpec] = [
    ("/v2/topics", list_groups, ["GET"]),
    ("/v2/topics/{name}", get_group, ["GET"]),
    ("/v2/topics/{name}", delete_group, ["DELETE"]),
    ("/v2/topics/{name}/endpoints", upsert_endpoints, ["POST"]),
    ("/v2/topics/{name}/endpoints", remove_endpoints, ["DELETE"]),
]
