"""HTTP handlers: workflow triggers and runs."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from qstash_server.api.common import (
    RouteSpec,
    broker_of,
    dumps,
    empty,
    json_body,
    json_response,
    target_and_headers,
)
from qstash_server.problems import ApiError

__all__ = [
    "ROUTES",
    "batch_trigger",
    "delete_run",
    "get_run",
    "trigger",
]


async def trigger(request: Request) -> Response:
    b = broker_of(request)
    b.check_fault()
    url, headers = target_and_headers(request, 3)
    client = request.client
    return json_response(b.trigger_workflow(url, await request.body(), headers,
                                    client.host if client else None))


async def batch_trigger(request: Request) -> Response:
    b = broker_of(request)
    b.check_fault()
    items = await json_body(request)
    if not isinstance(items, list):
        raise ApiError(400, "body must be a JSON array of {destination, body, headers}")
    client = request.client
    out = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("destination"), str):
            raise ApiError(400, f"item {index}: 'destination' (string) is required")
        raw = item.get("body")
        body = b"" if raw is None else raw.encode() if isinstance(raw, str) else dumps(raw)
        headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        out.append(b.trigger_workflow(item["destination"], body, headers,
                                      client.host if client else None))
    return json_response(out, 201)


async def delete_run(request: Request) -> Response:
    b = broker_of(request)
    cancel = request.query_params.get("cancel", "false").lower() == "true"
    b.finish_run(request.path_params["run"], cancel)
    return empty()


async def get_run(request: Request) -> Response:
    return json_response(broker_of(request).run_document(request.path_params["run"]))


ROUTES: list[RouteSpec] = [
    ("/v2/batch/trigger", batch_trigger, ["POST"]),
    ("/v2/trigger/{destination:path}", trigger, ["POST"]),
    ("/v2/workflows/runs/{run}", delete_run, ["DELETE"]),
    ("/v2/workflows/runs/{run}", get_run, ["GET"]),
]
