"""A narrow, retrying seam over the official ``qstash`` SDK for the resources a plan manages.

Every call goes through :meth:`QStashAdmin._call`: 429s (burst limit), 5xx answers and transport
errors are retried with exponential backoff (honouring ``Burst-RateLimit-Reset``); anything else,
or retries exhausted, becomes :class:`~migrator.errors.ServiceError` naming the operation. An
answer is told apart by the SDK's error type and the HTTP status of the response (recorded by a
response hook on the SDK's HTTP client), never by the error's text. The token is only ever in
the SDK's Authorization header; no message here contains it.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from qstash import QStash
from qstash.errors import DailyMessageLimitExceededError, QStashError, RateLimitExceededError

from migrator.config import QStashConnection
from migrator.errors import ServiceError
from migrator.plan.spec import QueueSpec, ScheduleSpec, UrlGroupEndpointSpec, UrlGroupSpec

__all__ = ["QStashAdmin"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class QStashAdmin:
    """Queues, URL groups and schedules through the SDK, with retries on transient errors.

    A context manager: leaving it closes the SDK's connections (``with QStashAdmin(c) as a``).
    """

    def __init__(
        self,
        connection: QStashConnection,
        *,
        attempts: int = 6,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``transport`` replaces the network (tests: a flaky or mock transport)."""
        self.url = connection.url
        self.client = QStash(
            connection.token.get_secret_value(), retry=False, base_url=connection.url
        )
        self.attempts, self.backoff, self.max_backoff, self._sleep = (
            attempts, backoff, max_backoff, sleep,
        )
        if transport is not None:
            self._http().close()
            self.client.http._client = httpx.Client(transport=transport)
        # the status of the last response the SDK received in this attempt (None: no answer)
        self._status: int | None = None
        self._http().event_hooks = {"request": [], "response": [self._record_status]}

    def _record_status(self, response: httpx.Response) -> None:
        self._status = response.status_code

    def _http(self) -> httpx.Client:
        # The SDK's HttpClient holds one httpx.Client and has no close() of its own.
        client: httpx.Client = self.client.http._client
        return client

    def close(self) -> None:
        """Close the SDK's HTTP connections (idempotent)."""
        self._http().close()

    def __enter__(self) -> QStashAdmin:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ reading
    def queues(self) -> list[QueueSpec]:
        found = self._call("list queues", self.client.queue.list)
        return [QueueSpec.model_construct(name=q.name, parallelism=q.parallelism, paused=q.paused)
                for q in found]

    def url_groups(self) -> list[UrlGroupSpec]:
        found = self._call("list URL groups", self.client.url_group.list)
        return [_url_group(g) for g in found]

    def url_group(self, name: str) -> UrlGroupSpec:
        return _url_group(self._call(f"get URL group {name}", lambda: self.client.url_group.get(name)))

    def schedules(self) -> list[ScheduleSpec]:
        found = self._call("list schedules", self.client.schedule.list)
        out = []
        for s in found:
            body = s.body
            encoded = getattr(s, "body_base64", None)
            if body is None and encoded:
                body = base64.b64decode(encoded).decode("utf-8", "replace")
            out.append(ScheduleSpec.model_construct(
                schedule_id=s.schedule_id, destination=s.destination, cron=s.cron,
                method=s.method, body=body or None, retries=s.retries, reason="",
            ))
        return out

    # ------------------------------------------------------------------------------ writing
    def upsert_queue(self, spec: QueueSpec) -> None:
        self._call(f"upsert queue {spec.name}", lambda: self.client.queue.upsert(
            spec.name, parallelism=spec.parallelism, paused=spec.paused))

    def delete_queue(self, name: str) -> None:
        self._call(f"delete queue {name}", lambda: self.client.queue.delete(name))

    def upsert_endpoints(self, group: str, endpoints: list[UrlGroupEndpointSpec]) -> None:
        items: list[Any] = [{"name": e.name, "url": e.url} for e in endpoints]
        self._call(f"upsert endpoints of URL group {group}",
                   lambda: self.client.url_group.upsert_endpoints(group, items))

    def remove_endpoints(self, group: str, endpoints: list[dict[str, str]]) -> None:
        items: list[Any] = endpoints
        self._call(f"remove endpoints of URL group {group}",
                   lambda: self.client.url_group.remove_endpoints(group, items))

    def delete_url_group(self, name: str) -> None:
        self._call(f"delete URL group {name}", lambda: self.client.url_group.delete(name))

    def create_schedule(self, spec: ScheduleSpec) -> None:
        self._call(f"create schedule {spec.schedule_id}", lambda: self.client.schedule.create(
            destination=spec.destination, cron=spec.cron, body=spec.body,
            content_type="application/json" if spec.body else None, method=spec.method,
            retries=spec.retries, schedule_id=spec.schedule_id))

    def delete_schedule(self, schedule_id: str) -> None:
        self._call(f"delete schedule {schedule_id}",
                   lambda: self.client.schedule.delete(schedule_id))

    # ------------------------------------------------------------------------------ retrying
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        delay = self.backoff
        status: int | None
        for attempt in range(1, self.attempts + 1):
            self._status = None
            try:
                return fn()
            except DailyMessageLimitExceededError as exc:
                raise ServiceError(f"QStash refused to {what}: {exc}", status=429) from None
            except RateLimitExceededError as exc:
                wait, status, reason = _reset_wait(exc.reset, delay), 429, "rate limited (429)"
            except QStashError as exc:
                status = self._status
                if status in (401, 403):
                    raise ServiceError(
                        f"QStash at {self.url} refused the token ({status}) to {what}; check "
                        "QSTASH_TOKEN or --qstash-token (and QSTASH_URL for the region).",
                        status=status) from None
                if status is None or status < 500:
                    raise ServiceError(f"QStash refused to {what}: {exc}", status=status) from None
                wait, reason = delay, f"server error {status}"
            except httpx.TransportError as exc:
                wait, status, reason = delay, None, f"{type(exc).__name__}: {exc}"
            if attempt == self.attempts:
                raise ServiceError(
                    f"QStash: could not {what} after {attempt} attempts ({reason}); "
                    f"check {self.url} and re-run.", status=status) from None
            log.warning("QStash: %s: %s; retrying in %.2fs", what, reason, wait)
            self._sleep(min(wait, self.max_backoff))
            delay = min(delay * 2, self.max_backoff)
        raise AssertionError("unreachable")


def _url_group(group: Any) -> UrlGroupSpec:
    return UrlGroupSpec.model_construct(name=group.name, endpoints=[
        UrlGroupEndpointSpec.model_construct(name=e.name or "", url=e.url) for e in group.endpoints
    ])


def _reset_wait(reset: str | None, default: float) -> float:
    """Seconds until ``Burst-RateLimit-Reset`` (unix seconds or ms), else ``default``."""
    try:
        value = float(reset) if reset else None
    except ValueError:
        value = None
    if value is None:
        return default
    if value > 1e12:
        value /= 1000
    return max(0.05, min(value - time.time(), 60.0)) if value > 1e9 else max(0.05, value)
