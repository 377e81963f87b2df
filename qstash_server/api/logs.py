"""HTTP handlers: logs and events."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from qstash_server.api.common import (
    LOG_FILTERS,
    Handler,
    RouteSpec,
    broker_of,
    int_param,
    json_response,
)
from qstash_server.api.filters import multi, parse_filter
from qstash_server.problems import ApiError

__all__ = ["ROUTES"]


def _logs(key: str) -> Handler:
    async def handler(request: Request) -> Response:
        b = broker_of(request)
        params = request.query_params
        count = int_param(params, "count", 100, 1, 1000)
        predicate = parse_filter(params, LOG_FILTERS)
        cursor = params.get("cursor") or None
        if cursor is not None and not cursor.isdigit():
            raise ApiError(400, f"invalid cursor {cursor!r}")
        ids = set(multi(params, "messageId")) | set(multi(params, "messageIds"))
        labels = set(multi(params, "label"))
        states = {s.upper() for s in multi(params, "state")}
        state = states.pop() if len(states) == 1 else None
        if state == "IN_PROGRESS":  # several states (the predicate knows which)
            state = None
        elif state == "CANCELLED":
            state = "CANCELED"
        entries, next_cursor = b.list_logs(predicate, cursor, count, ids or None,
                                           next(iter(labels)) if len(labels) == 1 else None,
                                           state)
        out: dict[str, Any] = {key: entries}
        if next_cursor:
            out["cursor"] = next_cursor
        return json_response(out)

    return handler


ROUTES: list[RouteSpec] = [
    ("/v2/logs", _logs("logs"), ["GET"]),
    ("/v2/events", _logs("events"), ["GET"]),
]
