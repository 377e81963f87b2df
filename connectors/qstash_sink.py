"""Deliver messages through QStash: ``POST /v2/batch``, replies mapped back item by item.

Each item carries ``Upstash-Deduplication-Id`` (built by :func:`connectors.sink.dedup_id` from
route, topic, partition and offset, letters/digits/``-``/``.`` only), so a replay after a crash
or rebalance is answered 202 ``deduplicated`` instead of creating a second message. The Kafka
key, headers, topic, partition, offset and timestamp travel as ``Upstash-Forward-Kafka-*``
headers (delivered as ``Kafka-*``). Destination settings (retries, delay, callbacks, flow
control, label, extra headers) become ``Upstash-*`` headers on every item.

Request-level failures (429, 5xx, timeouts, connection errors) fail every item of the batch
retryably as an *outage* (QStash's, not the records'), with the wait asked by
``Retry-After`` / ``Burst-RateLimit-Reset`` / ``RateLimit-Reset``; a per-item error fails that
item alone. Bodies that are not UTF-8 cannot travel inside the batch's JSON and are published
one by one with ``/v2/publish`` instead.

The hot path uses a shared ``httpx.Client`` (keep-alive pool) rather than the official ``qstash``
SDK: the SDK has no per-item batch error mapping, no retry on 429/5xx and one object per
message; see docs/bridge.md.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from connectors.destinations import (
    EnqueueQueueDestination,
    PublishUrlGroupDestination,
    QStashDestination,
)
from connectors.responses import release
from connectors.sink import DeliveryResult, Message, Record, forward_headers
from connectors.statuses import CredentialsRefusedError, error_for_status
from migrator.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError

__all__ = ["QStashDestination", "QStashSink", "destination_headers", "header_dedup_id"]

log = logging.getLogger(__name__)

def destination_headers(dest: QStashDestination) -> dict[str, str]:
    """The ``Upstash-*`` headers a destination's settings put on every message."""
    h: dict[str, str] = {}
    if dest.retries is not None:
        h["Upstash-Retries"] = str(dest.retries)
    if dest.retry_delay is not None:
        h["Upstash-Retry-Delay"] = dest.retry_delay
    if dest.timeout is not None:
        h["Upstash-Timeout"] = dest.timeout
    if dest.delay is not None:
        h["Upstash-Delay"] = dest.delay
    if dest.callback is not None:
        h["Upstash-Callback"] = dest.callback
    if dest.failure_callback is not None:
        h["Upstash-Failure-Callback"] = dest.failure_callback
    if dest.label is not None:
        h["Upstash-Label"] = dest.label
    if dest.flow_control is not None:
        value = dest.flow_control.header_value()
        if value:
            h["Upstash-Flow-Control-Value"] = value
    for name, value in dest.headers.items():
        h[f"Upstash-Forward-{name}"] = value
    return h


class QStashSink:
    """One QStash destination (URL, URL group, queue or workflow endpoint)."""

    def __init__(
        self,
        dest: QStashDestination,
        *,
        base_url: str,
        token: str,
        client: httpx.Client,
        name: str,
        timeout: float = 30.0,
    ) -> None:
        self.name = name
        self.dest = dest
        self._client = client
        self._base = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {token}"}
        self._batch_headers = {**self._auth, "Content-Type": "application/json"}
        self._timeout = timeout
        self._static = destination_headers(dest)
        fc = dest.flow_control
        self._fc_key = fc.key if fc is not None else None
        if isinstance(dest, PublishUrlGroupDestination):
            self._target = dest.url_group
        else:
            self._target = dest.url
        self._queue = dest if isinstance(dest, EnqueueQueueDestination) else None
        # shadow delivery must not use the application's ids: live delivery would be dropped
        self._id_header = (dest.dedup_id_header
                           if "Migrator-Shadow" not in dest.headers else None)

    def close(self) -> None:
        """The shared client is closed by its owner."""

    # -- building ----------------------------------------------------------------------------

    def _headers(self, m: Message) -> dict[str, str]:
        r = m.record
        h = self._static.copy()
        h["Content-Type"] = m.content_type
        h["Upstash-Deduplication-Id"] = m.dedup_id
        if self._id_header is not None:
            event_id = header_dedup_id(r, self._id_header, self._target)
            if event_id is not None:
                h["Upstash-Deduplication-Id"] = event_id
        forward_headers(r, h, "Upstash-Forward-")
        if self._fc_key is not None:
            key = (r.key or b"").decode("utf-8", "replace")
            h["Upstash-Flow-Control-Key"] = self._fc_key.format(
                topic=r.topic, partition=r.partition, key=key
            )
        if m.extra:
            h.update(m.extra)
        return h

    def _queue_name(self, m: Message) -> str | None:
        if self._queue is None:
            return None
        return self._queue.queue_name(m.record.topic, m.record.partition)

    # -- sending -----------------------------------------------------------------------------

    def write_batch(self, messages: Sequence[Message]) -> list[DeliveryResult]:
        results: list[DeliveryResult] = [None] * len(messages)
        items: list[dict[str, Any]] = []
        index: list[int] = []
        target, headers, queued = self._target, self._headers, self._queue is not None
        for i, m in enumerate(messages):
            try:
                body = m.body.decode("utf-8")
            except UnicodeDecodeError:
                results[i] = self._publish_one(m)
                continue
            item: dict[str, Any] = {"destination": target, "headers": headers(m), "body": body}
            if queued:
                item["queue"] = self._queue_name(m)
            items.append(item)
            index.append(i)
        if items:
            replies = self._post_batch(items)
            if len(index) == len(messages):
                return replies
            for i, result in zip(index, replies, strict=True):
                results[i] = result
        return results

    def _post_batch(self, items: list[dict[str, Any]]) -> list[DeliveryResult]:
        n = len(items)
        try:
            resp = self._client.post(
                f"{self._base}/v2/batch",
                content=orjson.dumps(items),
                headers=self._batch_headers,
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            return [RetryableDeliveryError(f"QStash batch timed out ({exc})", outage=True)] * n
        except httpx.TransportError as exc:
            return [RetryableDeliveryError(f"QStash unreachable ({exc})", outage=True)] * n
        release(resp)
        error = self._answer(resp)
        if error is not None:
            return [error] * n
        try:
            replies = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            return [RetryableDeliveryError("QStash answered a batch with non-JSON")] * n
        if not isinstance(replies, list):
            replies = [replies]
        if len(replies) != n:
            return [
                RetryableDeliveryError(f"QStash answered {len(replies)} items for a batch of {n}")
            ] * n
        return [
            None if reply.__class__ is dict and "messageId" in reply else _item_result(reply, self.name)
            for reply in replies
        ]

    def _publish_one(self, m: Message) -> DeliveryResult:
        queue = self._queue_name(m)
        path = f"/v2/enqueue/{queue}/{self._target}" if queue else f"/v2/publish/{self._target}"
        try:
            resp = self._client.post(
                self._base + path,
                content=m.body,
                headers={**self._auth, **self._headers(m)},
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            return RetryableDeliveryError(f"QStash publish timed out ({exc})", outage=True)
        except httpx.TransportError as exc:
            return RetryableDeliveryError(f"QStash unreachable ({exc})", outage=True)
        release(resp)
        return self._answer(resp)

    def _answer(self, resp: httpx.Response) -> DeliveryResult:
        """What QStash's answer to a whole request means (a failure is an outage)."""
        status = resp.status_code
        if status in _REFUSED:
            return _refused(status, self.name)
        return error_for_status(status, resp.headers, resp.content, where="QStash", outage=True)


_REFUSED = frozenset({401, 403})


def _refused(status: int, name: str) -> DeliveryError:
    return CredentialsRefusedError(
        f"QStash refused the token (HTTP {status}) while delivering {name}: check qstash.token / "
        "QSTASH_TOKEN and qstash.url.", status=status,
    )


_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


def header_dedup_id(record: Record, header: str, target: str) -> str | None:
    """The deduplication id from the record's ``header`` (the application's event id) for one
    destination ``target`` (URL or URL group): ``<event id>-<sha256(target)[:10]>``, the event
    id as is when it uses only letters, digits, ``_``, ``.`` and ``-`` (what QStash accepts),
    else ``evt-`` plus its SHA-256 (hex, 40 characters). QStash's ids are per account, so the
    target part keeps two destinations of one topic (two groups) from dropping each other's
    copy. None when the record has no such header. A producer publishing the same event
    directly must send the same id (the plan's producer scaffolds do)."""
    for name, value in record.headers:
        if name == header and value:
            text = value.decode("utf-8", "replace")
            event = text if _SAFE_ID.match(text) else (
                "evt-" + hashlib.sha256(value).hexdigest()[:40])
            return f"{event}-{hashlib.sha256(target.encode()).hexdigest()[:10]}"
    return None


def _item_result(reply: Any, name: str) -> DeliveryResult:
    """One element of a batch reply: a message id (or a URL group's list of them), or an error."""
    if isinstance(reply, list):
        errors = [_item_result(r, name) for r in reply]
        return next((e for e in errors if e is not None), None)
    if not isinstance(reply, dict):
        return RetryableDeliveryError(f"QStash batch reply item is not an object: {reply!r:.80}")
    if "messageId" in reply or "workflowRunId" in reply:
        return None
    message = str(reply.get("error") or reply)[:200]
    status = reply.get("status")
    if isinstance(status, int):
        if status in _REFUSED:
            return _refused(status, name)
        return error_for_status(status, {}, message.encode(), where="QStash (batch item)")
    return PermanentDeliveryError(f"QStash refused the item: {message}", status=400)
