"""HTTP handlers: queues."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from qstash_server.api.common import (
    RouteSpec,
    broker_of,
    empty,
    json_body,
    json_response,
)
from qstash_server.problems import ApiError

__all__ = [
    "ROUTES",
    "delete_queue",
    "get_queue",
    "list_queues",
    "pause_queue",
    "resume_queue",
    "upsert_queue",
]


async def upsert_queue(request: Request) -> Response:
    b = broker_of(request)
    body = await json_body(request, default={})
    if not isinstance(body, dict) or not isinstance(body.get("queueName"), str):
        raise ApiError(400, "'queueName' (string) is required")
    parallelism = body.get("parallelism", 1)
    if parallelism is None:
        parallelism = 1
    if not isinstance(parallelism, int) or isinstance(parallelism, bool):
        raise ApiError(400, "'parallelism' must be an integer")
    paused = body.get("paused")
    b.upsert_queue(body["queueName"], parallelism, bool(paused) if paused is not None else None)
    return empty()


async def list_queues(request: Request) -> Response:
    b = broker_of(request)
    return json_response(b.list_queues())


async def get_queue(request: Request) -> Response:
    b = broker_of(request)
    return json_response(b.get_queue(request.path_params["name"]).to_api())


async def delete_queue(request: Request) -> Response:
    b = broker_of(request)
    b.delete_queue(request.path_params["name"])
    return empty()


async def pause_queue(request: Request) -> Response:
    b = broker_of(request)
    b.pause_queue(request.path_params["name"], True)
    return empty()


async def resume_queue(request: Request) -> Response:
    b = broker_of(request)
    b.pause_queue(request.path_params["name"], False)
    return empty()


ROUTES: list[RouteSpec] = [
    ("/v2/queues", upsert_queue, ["POST"]),
    ("/v2/queues", list_queues, ["GET"]),
    ("/v2/queues/{name}", get_queue, ["GET"]),
    ("/v2/queues/{name}", delete_queue, ["DELETE"]),
    ("/v2/queues/{name}/pause", pause_queue, ["POST"]),
    ("/v2/queues/{name}/resume", resume_queue, ["POST"]),
]
