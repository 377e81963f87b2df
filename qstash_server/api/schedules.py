"""HTTP handlers: schedules."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from qstash_server.api.common import (
    RouteSpec,
    broker_of,
    empty,
    json_response,
    target_and_headers,
)

__all__ = [
    "ROUTES",
    "create_schedule",
    "delete_schedule",
    "get_schedule",
    "list_schedules",
    "pause_schedule",
    "resume_schedule",
]


async def create_schedule(request: Request) -> Response:
    b = broker_of(request)
    destination, headers = target_and_headers(request, 3)
    client = request.client
    schedule_id = b.create_schedule(
        destination, await request.body(), headers, client.host if client else None
    )
    return json_response({"scheduleId": schedule_id})


async def list_schedules(request: Request) -> Response:
    b = broker_of(request)
    return json_response(b.list_schedules())


async def get_schedule(request: Request) -> Response:
    b = broker_of(request)
    return json_response(b.schedule_api(b.get_schedule(request.path_params["id"])))


async def delete_schedule(request: Request) -> Response:
    b = broker_of(request)
    b.delete_schedule(request.path_params["id"])
    return empty()


async def pause_schedule(request: Request) -> Response:
    b = broker_of(request)
    b.pause_schedule(request.path_params["id"], True)
    return empty()


async def resume_schedule(request: Request) -> Response:
    b = broker_of(request)
    b.pause_schedule(request.path_params["id"], False)
    return empty()


ROUTES: list[RouteSpec] = [
    ("/v2/schedules", list_schedules, ["GET"]),
    ("/v2/schedules/{id}/pause", pause_schedule, ["POST", "PATCH"]),
    ("/v2/schedules/{id}/resume", resume_schedule, ["POST", "PATCH"]),
    ("/v2/schedules/{id}", get_schedule, ["GET"]),
    ("/v2/schedules/{id}", delete_schedule, ["DELETE"]),
    ("/v2/schedules/{destination:path}", create_schedule, ["POST"]),
]
