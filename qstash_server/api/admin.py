"""HTTP handlers: test-only administration (faults, schedule triggers)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from qstash_server.api.common import (
    RouteSpec,
    broker_of,
    json_body,
    json_response,
)
from qstash_server.problems import ApiError

__all__ = [
    "ROUTES",
    "admin_faults",
    "admin_trigger_schedule",
]


async def admin_faults(request: Request) -> Response:
    b = broker_of(request)
    body = await json_body(request, default={})
    if not isinstance(body, dict):
        raise ApiError(400, "expected {\"rate\": float, \"statuses\": [int]}")
    rate = body.get("rate", 0.0)
    statuses = body.get("statuses") or None
    if not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise ApiError(400, "'rate' must be a number between 0 and 1")
    if statuses is not None and not (
        isinstance(statuses, list) and all(isinstance(s, int) and 400 <= s <= 599 for s in statuses)
    ):
        raise ApiError(400, "'statuses' must be HTTP error statuses")
    return json_response(b.set_faults(float(rate), tuple(statuses) if statuses else None))


async def admin_trigger_schedule(request: Request) -> Response:
    b = broker_of(request)
    from qstash_server.engine.timing import now_ms

    sc = b.get_schedule(request.path_params["id"])
    b.fire_schedule(sc, now_ms())
    return json_response({"scheduleId": sc.id, "lastScheduleStates": sc.last_states})


ROUTES: list[RouteSpec] = [
    ("/__admin/faults", admin_faults, ["POST"]),
    ("/__admin/schedules/{id}/trigger", admin_trigger_schedule, ["POST"]),
]
