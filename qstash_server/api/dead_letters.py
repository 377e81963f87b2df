"""HTTP handlers: the dead-letter queue."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from qstash_server.api.common import (
    DLQ_FILTERS,
    RouteSpec,
    broker_of,
    empty,
    int_param,
    json_body,
    json_response,
    raw_headers,
)
from qstash_server.api.filters import multi, parse_filter
from qstash_server.problems import ApiError

__all__ = [
    "ROUTES",
    "delete_dlq",
    "delete_dlq_many",
    "get_dlq",
    "list_dlq",
    "retry_dlq",
    "retry_dlq_many",
]


async def list_dlq(request: Request) -> Response:
    b = broker_of(request)
    params = request.query_params
    count = int_param(params, "count", 100, 1, 100)
    predicate = parse_filter(params, DLQ_FILTERS)
    messages, cursor = b.dlq_list(predicate, params.get("cursor") or None, count)
    out: dict[str, Any] = {"messages": messages}
    if cursor:
        out["cursor"] = cursor
    return json_response(out)


async def get_dlq(request: Request) -> Response:
    return json_response(broker_of(request).dlq_document(request.path_params["id"]))


async def delete_dlq(request: Request) -> Response:
    b = broker_of(request)
    b.dlq_delete(request.path_params["id"])
    return empty()


async def _dlq_selection(request: Request) -> list[str]:
    b = broker_of(request)
    params = request.query_params
    ids = multi(params, "dlqIds")
    count: int | None = None
    try:
        count = int(params.get("count") or 0) or None
    except ValueError:
        raise ApiError(400, "count must be an integer") from None
    if count is not None and count < 1:
        count = None
    body = await json_body(request, default={})
    if not ids and isinstance(body, dict):
        ids = [str(i) for i in body.get("dlqIds") or []]
    if ids:
        return ids
    predicate = parse_filter(params, DLQ_FILTERS)
    return b.dlq_select(predicate, count)


async def delete_dlq_many(request: Request) -> Response:
    b = broker_of(request)
    ids = await _dlq_selection(request)
    return json_response({"deleted": b.dlq_delete_many(ids)})


async def retry_dlq(request: Request) -> Response:
    b = broker_of(request)
    overrides = raw_headers(request)
    return json_response(b.dlq_retry(request.path_params["id"], overrides), 201)


async def retry_dlq_many(request: Request) -> Response:
    b = broker_of(request)
    ids = await _dlq_selection(request)
    missing = b.dlq_missing(ids)
    if missing:
        raise ApiError(404, f"dlq messages not found: {', '.join(missing)}")
    overrides = raw_headers(request)
    return json_response({"responses": [b.dlq_retry(i, overrides) for i in ids]}, 201)


ROUTES: list[RouteSpec] = [
    ("/v2/dlq", list_dlq, ["GET"]),
    ("/v2/dlq", delete_dlq_many, ["DELETE"]),
    ("/v2/dlq/retry", retry_dlq_many, ["POST"]),
    ("/v2/dlq/retry/{id}", retry_dlq, ["POST"]),
    ("/v2/dlq/{id}", get_dlq, ["GET"]),
    ("/v2/dlq/{id}", delete_dlq, ["DELETE"]),
]
