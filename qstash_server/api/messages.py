"""HTTP handlers: publish, enqueue, batch, and a message's look-up, retry and cancellation."""

from __future__ import annotations

import asyncio

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
from qstash_server.api.filters import Filter, multi, parse_filter
from qstash_server.engine import Broker
from qstash_server.problems import ApiError

__all__ = [
    "BULK_WAIT_S",
    "ROUTES",
    "batch",
    "cancel_message",
    "cancel_messages",
    "enqueue",
    "get_bulk_action",
    "get_message",
    "list_bulk_actions",
    "publish",
    "retry_message",
]

BULK_WAIT_S = 60.0  # how long a filter-based cancel without async=true waits (QStash: 1 min)


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
    filters: dict[str, list[str]] = {}  # as given, for the bulk action's record
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
            filters = {k: multi(merged, k) for k in merged}
    query_filters = {name: values for name in (*MSG_FILTERS, "fromDate", "toDate")
                     if (values := multi(params, name))}
    if not ids and query_filters:
        predicate = parse_filter(params, MSG_FILTERS)
        filters = query_filters
    if not ids and b.cancels_in_background:
        return await _cancel_in_background(b, predicate, filters,
                                           params.get("async", "").lower() == "true")
    count = None
    if params.get("count") is not None:
        count = int_param(params, "count", 100, 1, 500)
    return json_response({"cancelled": b.cancel_many(ids or None, predicate, count)})


async def _cancel_in_background(b: Broker, predicate: Filter | None,
                                filters: dict[str, list[str]], at_once: bool) -> Response:
    """QStash's newer filter-based cancel: a bulk action. ``async=true`` answers as soon as it
    is created (``actionId``); otherwise the request waits up to a minute for it (then 429,
    the action keeps running). ``cancelled`` is how many messages matched, not how many were
    cancelled; ``count`` is ignored (both as QStash documents)."""
    action = b.bulk_cancel(predicate, filters)
    if at_once:
        return json_response({"cancelled": len(action.targets), "actionId": action.id}, 202)
    try:
        await asyncio.wait_for(action.done.wait(), timeout=BULK_WAIT_S)
    except TimeoutError:
        raise ApiError(429, f"bulk action {action.id} did not finish within "
                            f"{BULK_WAIT_S:g}s; it keeps running in the background "
                            f"(GET /v2/bulkActions/{action.id})") from None
    return json_response({"cancelled": len(action.targets)}, 202)


async def get_bulk_action(request: Request) -> Response:
    return json_response(broker_of(request).bulk_action(request.path_params["id"]))


async def list_bulk_actions(request: Request) -> Response:
    params = request.query_params
    count = int_param(params, "count", 100, 1, 1_000_000)
    return json_response(broker_of(request).list_bulk_actions(
        params.get("cursor"), min(count, 1000), params.get("state")))


ROUTES: list[RouteSpec] = [
    ("/v2/publish/{destination:path}", publish, ["POST"]),
    ("/v2/enqueue/{queue}/{destination:path}", enqueue, ["POST"]),
    ("/v2/batch", batch, ["POST"]),
    ("/v2/messages/{id}", get_message, ["GET"]),
    ("/v2/messages/{id}", cancel_message, ["DELETE"]),
    ("/v2/messages", cancel_messages, ["DELETE"]),
    ("/v2/messages/{id}/retry", retry_message, ["POST"]),
    ("/v2/bulkActions", list_bulk_actions, ["GET"]),
    ("/v2/bulkActions/{id}", get_bulk_action, ["GET"]),
]
