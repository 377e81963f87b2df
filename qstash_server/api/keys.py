"""HTTP handlers: signing keys."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from qstash_server.api.common import (
    RouteSpec,
    broker_of,
    json_response,
)

__all__ = [
    "ROUTES",
    "get_keys",
    "rotate_keys",
]


async def get_keys(request: Request) -> Response:
    b = broker_of(request)
    return json_response(b.signing_keys())


async def rotate_keys(request: Request) -> Response:
    b = broker_of(request)
    return json_response(b.rotate_keys())


ROUTES: list[RouteSpec] = [
    ("/v2/keys", get_keys, ["GET"]),
    ("/v2/keys/rotate", rotate_keys, ["POST"]),
]
