"""Cancel what QStash still holds for a replaced group, and learn which records those were.

Every QStash message the bridge publishes for a replaced group carries the group's cutover label
(:func:`~migrator.cutover.scope.cutover_label`) and its Kafka coordinates as forwarded headers
(``Kafka-Topic``, ``Kafka-Partition``, ``Kafka-Offset``). A rollback cancels by that label
(``DELETE /v2/messages?label=...``: messages accepted but not yet delivered, including ones
waiting in a queue, on a delay or between retries), then reads QStash's logs for the label in
states ``CANCELED`` and ``FAILED`` (retries exhausted: in QStash's DLQ) since the hand-off to
find, per partition, the first record the endpoint never processed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from migrator.config import redact_url
from migrator.errors import ServiceError

__all__ = ["Cancellation", "cancel_pending", "last_delivered"]

log = logging.getLogger(__name__)

Partition = tuple[str, int]
MAX_LOG_PAGES = 10_000


@dataclass(frozen=True)
class Cancellation:
    cancelled: int  # messages cancelled by this call
    # per partition, the lowest offset of a message cancelled or failed (QStash's DLQ) since the
    # hand-off: the endpoint never processed it
    first_cancelled: dict[Partition, int] = field(default_factory=dict)
    logged: int = 0  # cancelled or failed messages found in the logs since the hand-off


def _header(entry: dict[str, Any], name: str) -> str | None:
    headers = entry.get("header") or entry.get("headers") or {}
    for key, value in headers.items():
        if key.lower() == name.lower():
            if isinstance(value, list):
                return str(value[0]) if value else None
            return str(value)
    return None


def _check(resp: httpx.Response, what: str, base: str) -> None:
    if resp.status_code >= 400:
        raise ServiceError(
            f"QStash at {redact_url(base)} refused {what}: {resp.status_code} "
            f"{resp.text[:200]}", status=resp.status_code)


def cancel_pending(
    url: str, token: str, label: str, *, since_ms: int, client: httpx.Client | None = None
) -> Cancellation:
    """Cancel every message with ``label``; then list, from QStash's logs since ``since_ms``,
    the first cancelled offset per partition."""
    base = url.rstrip("/")
    own = client is None
    http = client or httpx.Client(timeout=30.0)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        try:
            resp = http.delete(f"{base}/v2/messages", params={"label": label}, headers=headers)
            _check(resp, f"cancelling the messages labelled {label}", base)
            body = resp.json() if resp.content else {}
            cancelled = int(body.get("cancelled", 0)) if isinstance(body, dict) else 0
            first: dict[Partition, int] = {}
            logged = 0
            for state in ("CANCELED", "FAILED"):
                cursor: str | None = None
                for _page in range(MAX_LOG_PAGES):
                    params: dict[str, Any] = {"label": label, "state": state,
                                              "fromDate": since_ms, "count": 1000}
                    if cursor:
                        params["cursor"] = cursor
                    resp = http.get(f"{base}/v2/logs", params=params, headers=headers)
                    _check(resp, f"reading the logs of label {label}", base)
                    page = resp.json()
                    for entry in page.get("logs") or page.get("events") or []:
                        topic = _header(entry, "Kafka-Topic")
                        part = _header(entry, "Kafka-Partition")
                        off = _header(entry, "Kafka-Offset")
                        if topic is None or part is None or off is None:
                            continue
                        logged += 1
                        tp = (topic, int(part))
                        first[tp] = min(first.get(tp, int(off)), int(off))
                    cursor = page.get("cursor") or None
                    if not cursor:
                        break
        except httpx.HTTPError as exc:
            raise ServiceError(f"QStash at {redact_url(base)} unreachable: {exc}") from None
    finally:
        if own:
            http.close()
    log.info("cancelled %d QStash message(s) labelled %s; first cancelled offsets %s",
             cancelled, label, first)
    return Cancellation(cancelled, first, logged)


def last_delivered(
    url: str, token: str, label: str, floor: dict[Partition, int], *, since_ms: int,
    max_pages: int = 50, client: httpx.Client | None = None,
) -> dict[Partition, int]:
    """Per partition, the highest offset at or above ``floor`` that QStash's logs show as
    delivered for ``label`` since ``since_ms``: records a bridge killed with -9 had published
    after its last commit. Reads the logs newest first and stops for a partition at its first
    delivery below the floor (for an ordered route every older one is lower), or after
    ``max_pages`` pages."""
    base = url.rstrip("/")
    own = client is None
    http = client or httpx.Client(timeout=30.0)
    headers = {"Authorization": f"Bearer {token}"}
    found: dict[Partition, int] = {}
    open_parts = set(floor)
    try:
        cursor: str | None = None
        for _page in range(max_pages):
            params: dict[str, Any] = {"label": label, "state": "DELIVERED", "fromDate": since_ms,
                                      "count": 1000}
            if cursor:
                params["cursor"] = cursor
            try:
                resp = http.get(f"{base}/v2/logs", params=params, headers=headers)
            except httpx.HTTPError as exc:
                raise ServiceError(f"QStash at {redact_url(base)} unreachable: {exc}") from None
            _check(resp, f"reading the logs of label {label}", base)
            page = resp.json()
            for entry in page.get("logs") or page.get("events") or []:
                topic = _header(entry, "Kafka-Topic")
                part = _header(entry, "Kafka-Partition")
                off = _header(entry, "Kafka-Offset")
                if topic is None or part is None or off is None:
                    continue
                tp = (topic, int(part))
                if tp not in open_parts:
                    continue
                if int(off) < floor[tp]:
                    open_parts.discard(tp)
                else:
                    found[tp] = max(found.get(tp, int(off)), int(off))
            cursor = page.get("cursor") or None
            if not cursor or not open_parts:
                break
    finally:
        if own:
            http.close()
    return found
