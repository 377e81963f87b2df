"""HTTP handlers: publish, enqueue, batch, and a message's look-up, retry and cancellation."""

from __future__ import annotations

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from qstash_server.api.common import (
    MSG_FILTERS,
    RouteSpec,
    broker_of,
    empty,
    int_param,
    json_body,
    json_response,
    target_and_headers,
)
from qstash_server.api.filters import multi, parse_filter

__all__ = [
    "ROUTES",
    "batch",
    "cancel_message",
    "cancel_messages",
    "enqueue",
    "get_message",
    "publish",
    "retry_message",
]


async def publish(request: Request) -> Response:
    b = broker_of(request)
    b.check_fault()
    destination, headers = target_and_headers(request, 3)
    body = await request.body()
    client = request.client
    status, answer = b.publish(
        destination, body, headers, caller_ip=client.host if client else None,
        all_headers=headers,
    )
    return json_response(answer, status)


async def enqueue(request: Request) -> Response:
    b = broker_of(request)
    b.check_fault()
    destination, headers = target_and_headers(request, 4)
    queue = request.path_params["queue"]
    body = await request.body()
    client = request.client
    status, answer = b.publish(
        destination, body, headers, queue=queue, caller_ip=client.host if client else None,
        all_headers=headers,
    )
    return json_response(answer, status)


async def batch(request: Request) -> Response:
    b = broker_of(request)
    b.check_fault()
    items = await json_body(request)
    client = request.client
    return json_response(b.batch(items, client.host if client else None))


async def get_message(request: Request) -> Response:
    b = broker_of(request)
    return json_response(b.get_message(request.path_params["id"]))


async def retry_message(request: Request) -> Response:
    b = broker_of(request)
    b.retry_now(request.path_params["id"])
    return empty()


async def cancel_message(request: Request) -> Response:
    b = broker_of(request)
    b.cancel(request.path_params["id"])
    return json_response({"cancelled": 1})


async def cancel_messages(request: Request) -> Response:
    b = broker_of(request)
    params = request.query_params
    ids = multi(params, "messageIds")
    if params.get("count") is not None:
        int_param(params, "count", 100, 1, 500)
    body = await json_body(request, default={})
    predicate = None
    if isinstance(body, dict):
        if "messageIds" in body and not ids:
            # an explicit list, even an empty one, never means "everything"
            listed = [str(i) for i in body.get("messageIds") or []]
            return json_response({"cancelled": b.cancel_many(listed, None, None) if listed else 0})
        body_filters = {k: v for k, v in body.items() if k != "messageIds" and v is not None}
        if body_filters:
            merged = QueryParams(
                [(k, ",".join(map(str, v)) if isinstance(v, list) else str(v))
                 for k, v in body_filters.items()]
            )
            predicate = parse_filter(merged, MSG_FILTERS)
    if not ids and any(
        multi(params, name) for name in (*MSG_FILTERS, "fromDate", "toDate")
    ):
        predicate = parse_filter(params, MSG_FILTERS)
    count = None
    if params.get("count") is not None:
        count = int_param(params, "count", 100, 1, 500)
    return json_response({"cancelled": b.cancel_many(ids or None, predicate, count)})


ROUTES: list[RouteSpec] = [
    ("/v2/publish/{destination:path}", publish, ["POST"]),
    ("/v2/enqueue/{queue}/{destination:path}", enqueue, ["POST"]),
    ("/v2/batch", batch, ["POST"]),
    ("/v2/messages/{id}", get_message, ["GET"]),
    ("/v2/messages/{id}", cancel_message, ["DELETE"]),
    ("/v2/messages", cancel_messages, ["DELETE"]),
    ("/v2/messages/{id}/retry", retry_message, ["POST"]),
]
