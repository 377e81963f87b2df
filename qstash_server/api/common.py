"""What every HTTP handler shares: JSON answers, request parsing, the engine behind the app,
and the wrapper that checks the token, turns errors into answers and waits for the commit."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from qstash_server.engine import Broker
from qstash_server.engine.timing import BadValue
from qstash_server.errors import StorageError
from qstash_server.problems import ApiError

__all__ = [
    "DLQ_FILTERS",
    "JSON_TYPE",
    "LOG_FILTERS",
    "MSG_FILTERS",
    "Handler",
    "RouteSpec",
    "authorized",
    "broker_of",
    "by_method",
    "destination_of",
    "dumps",
    "empty",
    "error_response",
    "int_param",
    "json_body",
    "json_response",
    "listing",
    "named_action",
    "named_answer",
    "raw_headers",
    "same_secret",
    "split_query",
    "target_and_headers",
]

_log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]
RouteSpec = tuple[str, Handler, list[str]]  # path, handler, methods
JSON_TYPE = "application/json"
dumps = orjson.dumps

LOG_FILTERS = ("messageId", "messageIds", "state", "url", "topicName", "scheduleId",
               "queueName", "label", "flowControlKey", "callerIp")
DLQ_FILTERS = ("messageId", "url", "topicName", "scheduleId", "queueName", "responseStatus",
                "callerIp", "callerIP", "label", "flowControlKey")
MSG_FILTERS = ("url", "topicName", "scheduleId", "queueName", "label", "flowControlKey",
                "callerIp", "callerIP")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data), status_code=status, media_type=JSON_TYPE, headers=headers)


def empty(status: int = 200) -> Response:
    return Response(b"", status_code=status)


def error_response(exc: ApiError) -> Response:
    return json_response({"error": exc.message}, exc.status, exc.headers or None)


def raw_headers(request: Request) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}


def split_query(request: Request) -> tuple[str, dict[str, str]]:
    """Destination query string (kept) and ``upstash-*`` config parameters (taken)."""
    raw = request.scope.get("query_string", b"").decode("latin-1")
    if not raw:
        return "", {}
    keep: list[tuple[str, str]] = []
    config: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        lower = key.lower()
        if lower == "qstash_token":
            continue
        if lower.startswith("upstash-"):
            config[lower] = value
        else:
            keep.append((key, value))
    return urlencode(keep), config


async def json_body(request: Request, *, default: Any = None) -> Any:
    raw = await request.body()
    if not raw.strip():
        return default
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "request body is not valid JSON") from None


def int_param(params: QueryParams, name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"invalid {name} {raw!r}, expected an integer") from None
    if not lo <= value <= hi:
        raise ApiError(400, f"{name} must be between {lo} and {hi}")
    return value


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented secret."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def by_method(handlers: dict[str, Handler]) -> Handler:
    if len(handlers) == 1:
        return next(iter(handlers.values()))

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch


def broker_of(request: Request) -> Broker:
    """The engine behind the app that received ``request``."""
    broker: Broker = request.app.state.broker
    return broker


def listing(fetch: Callable[[Broker], Any]) -> Handler:
    """A handler answering ``fetch(broker)`` as JSON (``GET /v2/<resources>``)."""

    async def handler(request: Request) -> Response:
        return json_response(fetch(broker_of(request)))

    return handler


def named_answer(fetch: Callable[[Broker, str], Any]) -> Handler:
    """A handler answering ``fetch(broker, name)`` as JSON (``GET /v2/<resources>/{name}``)."""

    async def handler(request: Request) -> Response:
        return json_response(fetch(broker_of(request), request.path_params["name"]))

    return handler


def named_action(act: Callable[[Broker, str], object]) -> Handler:
    """A handler doing ``act(broker, name)``, answering an empty 200 (delete, pause, ...)."""

    async def handler(request: Request) -> Response:
        act(broker_of(request), request.path_params["name"])
        return empty()

    return handler


def destination_of(request: Request, prefix_parts: int) -> tuple[str, dict[str, str]]:
    """The destination in the path (with its own query string) and the ``upstash-*`` query config."""
    path: str = request.scope["path"]
    parts = path.split("/", prefix_parts)
    found = parts[prefix_parts] if len(parts) > prefix_parts else ""
    query, config = split_query(request)
    if query and found.startswith(("http://", "https://")):
        found += "?" + query
    return found, config


def target_and_headers(request: Request, prefix_parts: int) -> tuple[str, dict[str, str]]:
    """The destination in the path and the request's headers, ``upstash-*`` query parameters
    added where the headers do not say (publish, enqueue, schedule, trigger)."""
    found, config = destination_of(request, prefix_parts)
    headers = raw_headers(request)
    for k, v in config.items():
        headers.setdefault(k, v)
    return found, headers


def _not_stored(exc: StorageError) -> Response:
    """The state could not be written: nothing of this request is acknowledged (500, as
    QStash answers its internal failures; retryable; the changes are held and written later,
    so a retry with the same deduplication id gets the original message, never a second)."""
    return json_response({"error": f"{exc}; nothing was acknowledged, retry the request"},
                         500, {"Retry-After": "1"})


def authorized(handler: Handler) -> Handler:
    """The token check, errors as JSON answers, and the answer only after the commit."""

    async def wrapped(request: Request) -> Response:
        b = broker_of(request)
        auth = None
        for key, value in request.scope["headers"]:
            if key == b"authorization":
                auth = value.decode("latin-1")
                break
        if not (same_secret(auth, b.bearer) or
                same_secret(request.query_params.get("qstash_token"), b.token)):
            return json_response({"error": "Unauthorized"}, 401)
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_response(exc)
        except BadValue as exc:
            response = error_response(ApiError(400, str(exc)))
        except StorageError as exc:
            return _not_stored(exc)
        except Exception:
            _log.exception("%s %s failed", request.method, request.scope["path"])
            response = json_response({"error": "internal server error"}, 500)
        try:
            await b.commit()
        except StorageError as exc:
            return _not_stored(exc)
        return response

    return wrapped
