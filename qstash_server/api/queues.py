"""HTTP handlers: queues."""

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


list_queues = listing(lambda b: b.list_queues())
get_queue = named_answer(lambda b, name: b.get_queue(name).to_api())
delete_queue = named_action(lambda b, name: b.delete_queue(name))
pause_queue = named_action(lambda b, name: b.pause_queue(name, True))
resume_queue = named_action(lambda b, name: b.pause_queue(name, False))


ROUTES: list[RouteSpec] = [
    ("/v2/queues", upsert_queue, ["POST"]),
    ("/v2/queues", list_queues, ["GET"]),
    ("/v2/queues/{name}", get_queue, ["GET"]),
    ("/v2/queues/{name}", delete_queue, ["DELETE"]),
    ("/v2/queues/{name}/pause", pause_queue, ["POST"]),
    ("/v2/queues/{name}/resume", resume_queue, ["POST"]),
]
