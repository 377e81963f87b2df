"""The ASGI application (Starlette): QStash's v2 REST API over the broker."""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qstash_server.broker import Broker
from qstash_server.delivery import Dispatcher
from qstash_server.logs import multi, parse_filter
from qstash_server.problems import ApiError
from qstash_server.settings import ServerSettings
from qstash_server.store import GroupCommitter
from qstash_server.timing import BadValue

__all__ = ["create_app"]

_log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]
_JSON = "application/json"
_dumps = orjson.dumps

_LOG_FILTERS = ("messageId", "messageIds", "state", "url", "topicName", "scheduleId",
                "queueName", "label", "flowControlKey", "callerIp")
_DLQ_FILTERS = ("messageId", "url", "topicName", "scheduleId", "queueName", "responseStatus",
                "callerIp", "callerIP", "label", "flowControlKey")
_MSG_FILTERS = ("url", "topicName", "scheduleId", "queueName", "label", "flowControlKey",
                "callerIp", "callerIP")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_dumps(data), status_code=status, media_type=_JSON, headers=headers)


def _empty(status: int = 200) -> Response:
    return Response(b"", status_code=status)


def _error(exc: ApiError) -> Response:
    return _json({"error": exc.message}, exc.status, exc.headers or None)


def _raw_headers(request: Request) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in request.scope["headers"]}


def _split_query(request: Request) -> tuple[str, dict[str, str]]:
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


async def _json_body(request: Request, *, default: Any = None) -> Any:
    raw = await request.body()
    if not raw.strip():
        return default
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "request body is not valid JSON") from None


def _int_param(params: QueryParams, name: str, default: int, lo: int, hi: int) -> int:
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


def _same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented secret."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def _by_method(handlers: dict[str, Handler]) -> Handler:
    if len(handlers) == 1:
        return next(iter(handlers.values()))

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return dispatch


def create_app(settings: ServerSettings, broker: Broker | None = None) -> Starlette:
    """Build the app; the broker (state) is created here unless one is passed in."""
    b = broker or Broker(settings)
    bearer = "Bearer " + b.token

    async def group_commit() -> None:
        """Answer only after the request's changes are committed (shared commits)."""
        if b.committer is not None:
            await b.committer.commit()
        else:
            b.flush()

    def api(fn: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            auth = None
            for key, value in request.scope["headers"]:
                if key == b"authorization":
                    auth = value.decode("latin-1")
                    break
            if not (_same(auth, bearer) or _same(request.query_params.get("qstash_token"), b.token)):
                return _json({"error": "Unauthorized"}, 401)
            try:
                response = await fn(request)
            except ApiError as exc:
                response = _error(exc)
            except BadValue as exc:
                response = _error(ApiError(400, str(exc)))
            except Exception:
                _log.exception("%s %s failed", request.method, request.scope["path"])
                response = _json({"error": "internal server error"}, 500)
            await group_commit()
            return response

        return wrapped

    # ------------------------------------------------------------ messages
    def _destination(request: Request, prefix_parts: int) -> tuple[str, dict[str, str]]:
        path: str = request.scope["path"]
        parts = path.split("/", prefix_parts)
        destination = parts[prefix_parts] if len(parts) > prefix_parts else ""
        query, config = _split_query(request)
        if query and destination.startswith(("http://", "https://")):
            destination += "?" + query
        return destination, config

    async def publish(request: Request) -> Response:
        b.check_fault()
        destination, config = _destination(request, 3)
        headers = _raw_headers(request)
        for k, v in config.items():
            headers.setdefault(k, v)
        body = await request.body()
        client = request.client
        status, answer = b.publish(
            destination, body, headers, caller_ip=client.host if client else None,
            all_headers=headers,
        )
        return _json(answer, status)

    async def enqueue(request: Request) -> Response:
        b.check_fault()
        destination, config = _destination(request, 4)
        queue = request.path_params["queue"]
        headers = _raw_headers(request)
        for k, v in config.items():
            headers.setdefault(k, v)
        body = await request.body()
        client = request.client
        status, answer = b.publish(
            destination, body, headers, queue=queue, caller_ip=client.host if client else None,
            all_headers=headers,
        )
        return _json(answer, status)

    async def batch(request: Request) -> Response:
        b.check_fault()
        items = await _json_body(request)
        client = request.client
        return _json(b.batch(items, client.host if client else None))

    async def get_message(request: Request) -> Response:
        return _json(b.get_message(request.path_params["id"]))

    async def retry_message(request: Request) -> Response:
        b.retry_now(request.path_params["id"])
        return _empty()

    async def cancel_message(request: Request) -> Response:
        b.cancel(request.path_params["id"])
        return _json({"cancelled": 1})

    async def cancel_messages(request: Request) -> Response:
        params = request.query_params
        ids = multi(params, "messageIds")
        if params.get("count") is not None:
            _int_param(params, "count", 100, 1, 500)
        body = await _json_body(request, default={})
        predicate = None
        if isinstance(body, dict):
            if "messageIds" in body and not ids:
                # an explicit list, even an empty one, never means "everything"
                listed = [str(i) for i in body.get("messageIds") or []]
                return _json({"cancelled": b.cancel_many(listed, None, None) if listed else 0})
            body_filters = {k: v for k, v in body.items() if k != "messageIds" and v is not None}
            if body_filters:
                merged = QueryParams(
                    [(k, ",".join(map(str, v)) if isinstance(v, list) else str(v))
                     for k, v in body_filters.items()]
                )
                predicate = parse_filter(merged, _MSG_FILTERS)
        if not ids and any(
            multi(params, name) for name in (*_MSG_FILTERS, "fromDate", "toDate")
        ):
            predicate = parse_filter(params, _MSG_FILTERS)
        count = None
        if params.get("count") is not None:
            count = _int_param(params, "count", 100, 1, 500)
        return _json({"cancelled": b.cancel_many(ids or None, predicate, count)})

    # ------------------------------------------------------------ queues
    async def upsert_queue(request: Request) -> Response:
        body = await _json_body(request, default={})
        if not isinstance(body, dict) or not isinstance(body.get("queueName"), str):
            raise ApiError(400, "'queueName' (string) is required")
        parallelism = body.get("parallelism", 1)
        if parallelism is None:
            parallelism = 1
        if not isinstance(parallelism, int) or isinstance(parallelism, bool):
            raise ApiError(400, "'parallelism' must be an integer")
        paused = body.get("paused")
        b.upsert_queue(body["queueName"], parallelism, bool(paused) if paused is not None else None)
        return _empty()

    async def list_queues(request: Request) -> Response:
        return _json([q.to_api() for q in b.queues.values()])

    async def get_queue(request: Request) -> Response:
        return _json(b.get_queue(request.path_params["name"]).to_api())

    async def delete_queue(request: Request) -> Response:
        b.delete_queue(request.path_params["name"])
        return _empty()

    async def pause_queue(request: Request) -> Response:
        b.pause_queue(request.path_params["name"], True)
        return _empty()

    async def resume_queue(request: Request) -> Response:
        b.pause_queue(request.path_params["name"], False)
        return _empty()

    # ------------------------------------------------------------ URL groups
    async def _endpoints(request: Request) -> list[dict[str, str]]:
        body = await _json_body(request, default={})
        if not isinstance(body, dict) or not isinstance(body.get("endpoints"), list):
            raise ApiError(400, "'endpoints' (a list of {url, name}) is required")
        endpoints = body["endpoints"]
        if not endpoints or not all(isinstance(e, dict) for e in endpoints):
            raise ApiError(400, "'endpoints' must be a non-empty list of objects")
        return [{k: str(v) for k, v in e.items() if v is not None} for e in endpoints]

    async def upsert_endpoints(request: Request) -> Response:
        b.upsert_endpoints(request.path_params["name"], await _endpoints(request))
        return _empty()

    async def remove_endpoints(request: Request) -> Response:
        b.remove_endpoints(request.path_params["name"], await _endpoints(request))
        return _empty()

    async def list_groups(request: Request) -> Response:
        return _json([g.to_api() for g in b.groups.values()])

    async def get_group(request: Request) -> Response:
        return _json(b.get_group(request.path_params["name"]).to_api())

    async def delete_group(request: Request) -> Response:
        b.delete_group(request.path_params["name"])
        return _empty()

    # ------------------------------------------------------------ schedules
    async def create_schedule(request: Request) -> Response:
        destination, config = _destination(request, 3)
        headers = _raw_headers(request)
        for k, v in config.items():
            headers.setdefault(k, v)
        client = request.client
        schedule_id = b.create_schedule(
            destination, await request.body(), headers, client.host if client else None
        )
        return _json({"scheduleId": schedule_id})

    async def list_schedules(request: Request) -> Response:
        return _json([b.schedule_api(s) for s in b.schedules.values()])

    async def get_schedule(request: Request) -> Response:
        return _json(b.schedule_api(b.get_schedule(request.path_params["id"])))

    async def delete_schedule(request: Request) -> Response:
        b.delete_schedule(request.path_params["id"])
        return _empty()

    async def pause_schedule(request: Request) -> Response:
        b.pause_schedule(request.path_params["id"], True)
        return _empty()

    async def resume_schedule(request: Request) -> Response:
        b.pause_schedule(request.path_params["id"], False)
        return _empty()

    # ------------------------------------------------------------ DLQ
    async def list_dlq(request: Request) -> Response:
        params = request.query_params
        count = _int_param(params, "count", 100, 1, 100)
        predicate = parse_filter(params, _DLQ_FILTERS)
        messages, cursor = b.dlq_list(predicate, params.get("cursor") or None, count)
        out: dict[str, Any] = {"messages": messages}
        if cursor:
            out["cursor"] = cursor
        return _json(out)

    async def get_dlq(request: Request) -> Response:
        from qstash_server.dlq import dlq_to_api

        return _json(dlq_to_api(b.dlq_get(request.path_params["id"])))

    async def delete_dlq(request: Request) -> Response:
        b.dlq_delete(request.path_params["id"])
        return _empty()

    async def _dlq_selection(request: Request) -> list[str]:
        params = request.query_params
        ids = multi(params, "dlqIds")
        count: int | None = None
        try:
            count = int(params.get("count") or 0) or None
        except ValueError:
            raise ApiError(400, "count must be an integer") from None
        if count is not None and count < 1:
            count = None
        body = await _json_body(request, default={})
        if not ids and isinstance(body, dict):
            ids = [str(i) for i in body.get("dlqIds") or []]
        if ids:
            return ids
        predicate = parse_filter(params, _DLQ_FILTERS)
        selected = [k for k, e in list(b.dlq.items()) if predicate(_dlq_doc(e))]
        return selected[:count] if count else selected

    def _dlq_doc(entry: dict[str, Any]) -> dict[str, Any]:
        from qstash_server.dlq import dlq_to_api

        return dlq_to_api(entry)

    async def delete_dlq_many(request: Request) -> Response:
        ids = await _dlq_selection(request)
        deleted = 0
        for dlq_id in ids:
            if dlq_id in b.dlq:
                b.dlq_delete(dlq_id)
                deleted += 1
        return _json({"deleted": deleted})

    async def retry_dlq(request: Request) -> Response:
        overrides = _raw_headers(request)
        return _json(b.dlq_retry(request.path_params["id"], overrides), 201)

    async def retry_dlq_many(request: Request) -> Response:
        ids = await _dlq_selection(request)
        missing = [i for i in ids if i not in b.dlq]
        if missing:
            raise ApiError(404, f"dlq messages not found: {', '.join(missing)}")
        overrides = _raw_headers(request)
        return _json({"responses": [b.dlq_retry(i, overrides) for i in ids]}, 201)

    # ------------------------------------------------------------ logs
    def _logs(key: str) -> Handler:
        async def handler(request: Request) -> Response:
            params = request.query_params
            count = _int_param(params, "count", 100, 1, 1000)
            predicate = parse_filter(params, _LOG_FILTERS)
            cursor = params.get("cursor") or None
            if cursor is not None and not cursor.isdigit():
                raise ApiError(400, f"invalid cursor {cursor!r}")
            ids = set(multi(params, "messageId")) | set(multi(params, "messageIds"))
            entries, next_cursor = b.list_logs(predicate, cursor, count, ids or None)
            out: dict[str, Any] = {key: entries}
            if next_cursor:
                out["cursor"] = next_cursor
            return _json(out)

        return handler

    # ------------------------------------------------------------ signing keys
    async def get_keys(request: Request) -> Response:
        return _json({"current": b.current_key, "next": b.next_key})

    async def rotate_keys(request: Request) -> Response:
        return _json(b.rotate_keys())

    # ------------------------------------------------------------ flow control
    async def list_flow(request: Request) -> Response:
        search = request.query_params.get("search") or ""
        return _json([fk.to_api() for fk in b.flow.values() if search in fk.key])

    async def get_flow(request: Request) -> Response:
        return _json(b.get_flow(request.path_params["key"]).to_api())

    async def pause_flow(request: Request) -> Response:
        b.flow_pause(request.path_params["key"], True)
        return _empty()

    async def resume_flow(request: Request) -> Response:
        b.flow_pause(request.path_params["key"], False)
        return _empty()

    def _opt_int(params: QueryParams, name: str) -> int | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return None
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, f"invalid {name} {raw!r}, expected an integer") from None
        if value < 0:
            raise ApiError(400, f"{name} cannot be negative")
        return value

    async def pin_flow(request: Request) -> Response:
        p = request.query_params
        b.flow_pin(request.path_params["key"], _opt_int(p, "parallelism"), _opt_int(p, "rate"),
                   _opt_int(p, "period"))
        return _empty()

    async def unpin_flow(request: Request) -> Response:
        p = request.query_params
        b.flow_unpin(request.path_params["key"], p.get("parallelism", "").lower() == "true",
                     p.get("rate", "").lower() == "true")
        return _empty()

    async def reset_flow(request: Request) -> Response:
        b.flow_reset_rate(request.path_params["key"])
        return _empty()

    async def global_parallelism(request: Request) -> Response:
        return _json({
            "parallelismMax": settings.delivery_concurrency,
            "parallelismCount": len(b.dispatcher.inflight) if b.dispatcher else 0,
        })

    # ------------------------------------------------------------ workflow runs
    async def trigger(request: Request) -> Response:
        b.check_fault()
        url, config = _destination(request, 3)
        headers = _raw_headers(request)
        for k, v in config.items():
            headers.setdefault(k, v)
        client = request.client
        return _json(b.trigger_workflow(url, await request.body(), headers,
                                        client.host if client else None))

    async def batch_trigger(request: Request) -> Response:
        b.check_fault()
        items = await _json_body(request)
        if not isinstance(items, list):
            raise ApiError(400, "body must be a JSON array of {destination, body, headers}")
        client = request.client
        out = []
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("destination"), str):
                raise ApiError(400, f"item {index}: 'destination' (string) is required")
            raw = item.get("body")
            body = b"" if raw is None else raw.encode() if isinstance(raw, str) else _dumps(raw)
            headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
            out.append(b.trigger_workflow(item["destination"], body, headers,
                                          client.host if client else None))
        return _json(out, 201)

    async def delete_run(request: Request) -> Response:
        cancel = request.query_params.get("cancel", "false").lower() == "true"
        b.finish_run(request.path_params["run"], cancel)
        return _empty()

    async def get_run(request: Request) -> Response:
        run = b.runs.get(request.path_params["run"])
        if run is None:
            raise ApiError(404, "workflow run not found")
        return _json({
            "workflowRunId": run["runId"], "workflowUrl": run["url"],
            "workflowState": run["state"], "workflowRunCreatedAt": run["createdAt"],
            "steps": [{"messageId": run["initMessageId"], "body": run["initBody"],
                       "callType": "step"}, *run["steps"]],
        })

    # ------------------------------------------------------------ test-only admin
    async def admin_faults(request: Request) -> Response:
        body = await _json_body(request, default={})
        if not isinstance(body, dict):
            raise ApiError(400, "expected {\"rate\": float, \"statuses\": [int]}")
        rate = body.get("rate", 0.0)
        statuses = body.get("statuses") or list(b.fault_statuses)
        if not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ApiError(400, "'rate' must be a number between 0 and 1")
        if not all(isinstance(s, int) and 400 <= s <= 599 for s in statuses):
            raise ApiError(400, "'statuses' must be HTTP error statuses")
        b.fault_rate = float(rate)
        b.fault_statuses = tuple(statuses)
        return _json({"rate": b.fault_rate, "statuses": list(b.fault_statuses)})

    async def admin_trigger_schedule(request: Request) -> Response:
        from qstash_server.timing import now_ms

        sc = b.get_schedule(request.path_params["id"])
        b.fire_schedule(sc, now_ms())
        return _json({"scheduleId": sc.id, "lastScheduleStates": sc.last_states})

    table: list[tuple[str, Handler, list[str]]] = [
        ("/v2/publish/{destination:path}", api(publish), ["POST"]),
        ("/v2/enqueue/{queue}/{destination:path}", api(enqueue), ["POST"]),
        ("/v2/batch", api(batch), ["POST"]),
        ("/v2/batch/trigger", api(batch_trigger), ["POST"]),
        ("/v2/trigger/{destination:path}", api(trigger), ["POST"]),
        ("/v2/messages/{id}", api(get_message), ["GET"]),
        ("/v2/messages/{id}", api(cancel_message), ["DELETE"]),
        ("/v2/messages", api(cancel_messages), ["DELETE"]),
        ("/v2/messages/{id}/retry", api(retry_message), ["POST"]),
        ("/v2/queues", api(upsert_queue), ["POST"]),
        ("/v2/queues", api(list_queues), ["GET"]),
        ("/v2/queues/{name}", api(get_queue), ["GET"]),
        ("/v2/queues/{name}", api(delete_queue), ["DELETE"]),
        ("/v2/queues/{name}/pause", api(pause_queue), ["POST"]),
        ("/v2/queues/{name}/resume", api(resume_queue), ["POST"]),
        ("/v2/topics", api(list_groups), ["GET"]),
        ("/v2/topics/{name}", api(get_group), ["GET"]),
        ("/v2/topics/{name}", api(delete_group), ["DELETE"]),
        ("/v2/topics/{name}/endpoints", api(upsert_endpoints), ["POST"]),
        ("/v2/topics/{name}/endpoints", api(remove_endpoints), ["DELETE"]),
        ("/v2/schedules", api(list_schedules), ["GET"]),
        ("/v2/schedules/{id}/pause", api(pause_schedule), ["POST", "PATCH"]),
        ("/v2/schedules/{id}/resume", api(resume_schedule), ["POST", "PATCH"]),
        ("/v2/schedules/{id}", api(get_schedule), ["GET"]),
        ("/v2/schedules/{id}", api(delete_schedule), ["DELETE"]),
        ("/v2/schedules/{destination:path}", api(create_schedule), ["POST"]),
        ("/v2/dlq", api(list_dlq), ["GET"]),
        ("/v2/dlq", api(delete_dlq_many), ["DELETE"]),
        ("/v2/dlq/retry", api(retry_dlq_many), ["POST"]),
        ("/v2/dlq/retry/{id}", api(retry_dlq), ["POST"]),
        ("/v2/dlq/{id}", api(get_dlq), ["GET"]),
        ("/v2/dlq/{id}", api(delete_dlq), ["DELETE"]),
        ("/v2/logs", api(_logs("logs")), ["GET"]),
        ("/v2/events", api(_logs("events")), ["GET"]),
        ("/v2/keys", api(get_keys), ["GET"]),
        ("/v2/keys/rotate", api(rotate_keys), ["POST"]),
        ("/v2/flowControl", api(list_flow), ["GET"]),
        ("/v2/flowControl/{key}", api(get_flow), ["GET"]),
        ("/v2/flowControl/{key}/pause", api(pause_flow), ["POST"]),
        ("/v2/flowControl/{key}/resume", api(resume_flow), ["POST"]),
        ("/v2/flowControl/{key}/pin", api(pin_flow), ["POST"]),
        ("/v2/flowControl/{key}/unpin", api(unpin_flow), ["POST"]),
        ("/v2/flowControl/{key}/resetRate", api(reset_flow), ["POST"]),
        ("/v2/flowControl/{key}/reset", api(reset_flow), ["POST"]),
        ("/v2/globalParallelism", api(global_parallelism), ["GET"]),
        ("/v2/workflows/runs/{run}", api(delete_run), ["DELETE"]),
        ("/v2/workflows/runs/{run}", api(get_run), ["GET"]),
        ("/__admin/faults", api(admin_faults), ["POST"]),
        ("/__admin/schedules/{id}/trigger", api(admin_trigger_schedule), ["POST"]),
    ]

    grouped: dict[str, dict[str, Handler]] = {}
    for path, handler, methods in table:
        for method in methods:
            grouped.setdefault(path, {})[method] = handler
    routes = [Route(path, _by_method(handlers), methods=list(handlers))
              for path, handlers in grouped.items()]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        dispatcher: Dispatcher | None = None
        b.committer = GroupCommitter(b.store)
        if not settings.accept_only:
            dispatcher = Dispatcher(b, settings.delivery_concurrency)
            await dispatcher.run()
        try:
            yield
        finally:
            if dispatcher is not None:
                await dispatcher.stop()
            committer, b.committer = b.committer, None
            committer.close()
            b.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.broker = b
    return app
