"""HTTP handlers: flow-control keys and the global parallelism."""

from __future__ import annotations

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from qstash_server.api.common import (
    RouteSpec,
    broker_of,
    empty,
    json_response,
)
from qstash_server.problems import ApiError

__all__ = [
    "ROUTES",
    "get_flow",
    "global_parallelism",
    "list_flow",
    "pause_flow",
    "pin_flow",
    "reset_flow",
    "resume_flow",
    "unpin_flow",
]


async def list_flow(request: Request) -> Response:
    b = broker_of(request)
    search = request.query_params.get("search") or ""
    return json_response(b.list_flow(search))


async def get_flow(request: Request) -> Response:
    b = broker_of(request)
    return json_response(b.get_flow(request.path_params["key"]).to_api())


async def pause_flow(request: Request) -> Response:
    b = broker_of(request)
    b.flow_pause(request.path_params["key"], True)
    return empty()


async def resume_flow(request: Request) -> Response:
    b = broker_of(request)
    b.flow_pause(request.path_params["key"], False)
    return empty()


def _opt_int(params: QueryParams, name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"invalid {name} {raw!r}, expected an integer") from None
    if value < 0:
        raise ApiError(400, f"{name} cannot be negative")
    return value


async def pin_flow(request: Request) -> Response:
    b = broker_of(request)
    p = request.query_params
    b.flow_pin(request.path_params["key"], _opt_int(p, "parallelism"), _opt_int(p, "rate"),
               _opt_int(p, "period"))
    return empty()


async def unpin_flow(request: Request) -> Response:
    b = broker_of(request)
    p = request.query_params
    b.flow_unpin(request.path_params["key"], p.get("parallelism", "").lower() == "true",
                 p.get("rate", "").lower() == "true")
    return empty()


async def reset_flow(request: Request) -> Response:
    b = broker_of(request)
    b.flow_reset_rate(request.path_params["key"])
    return empty()


async def global_parallelism(request: Request) -> Response:
    b = broker_of(request)
    return json_response(b.global_parallelism())


ROUTES: list[RouteSpec] = [
    ("/v2/flowControl", list_flow, ["GET"]),
    ("/v2/flowControl/{key}", get_flow, ["GET"]),
    ("/v2/flowControl/{key}/pause", pause_flow, ["POST"]),
    ("/v2/flowControl/{key}/resume", resume_flow, ["POST"]),
    ("/v2/flowControl/{key}/pin", pin_flow, ["POST"]),
    ("/v2/flowControl/{key}/unpin", unpin_flow, ["POST"]),
    ("/v2/flowControl/{key}/resetRate", reset_flow, ["POST"]),
    ("/v2/flowControl/{key}/reset", reset_flow, ["POST"]),
    ("/v2/globalParallelism", global_parallelism, ["GET"]),
]
