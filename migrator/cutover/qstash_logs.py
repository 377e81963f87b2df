"""Read QStash's own record of what happened to the bridge's messages: its logs and its DLQ.

Both are paged (``cursor``; ``count`` up to 100 per page in QStash's API) and streamed here page
by page, so memory does not grow with the number of pages read. Every message the bridge
publishes for a replaced group carries the group's cutover label and the record's coordinates
as forwarded headers (``Kafka-Topic``, ``Kafka-Partition``, ``Kafka-Offset``;
``connectors/qstash_sink.py``), which is what ties a log entry back to one Kafka record.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from migrator.config import redact_url
from migrator.errors import ServiceError

__all__ = ["Coordinate", "LogReader", "body_digest", "coordinate", "header_value"]

Coordinate = tuple[str, int, int]
PAGE = 100  # QStash's documented page size for logs and the DLQ
MAX_PAGES = 1_000_000  # a guard against a server whose cursor never ends


def header_value(entry: Mapping[str, Any], name: str) -> str | None:
    """A header of a log entry or DLQ message (``header``: name -> [values]), case-insensitive."""
    headers = entry.get("header") or entry.get("headers") or {}
    value = headers.get(name)  # as forwarded (canonical case): no scan
    if isinstance(value, list) and value:
        return str(value[0])
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            if isinstance(value, list):
                return str(value[0]) if value else None
            return str(value)
    return None


def coordinate(entry: Mapping[str, Any]) -> Coordinate | None:
    """The Kafka record a message was published for, from its forwarded headers."""
    topic = header_value(entry, "Kafka-Topic")
    part = header_value(entry, "Kafka-Partition")
    off = header_value(entry, "Kafka-Offset")
    if topic is None or part is None or off is None:
        return None
    try:
        return topic, int(part), int(off)
    except ValueError:
        return None


def body_digest(entry: Mapping[str, Any]) -> str | None:
    """SHA-256 (hex) of the body a log entry carries (base64 in QStash's logs), or None when the
    entry carries none (QStash may omit or redact bodies)."""
    raw = entry.get("body")
    if not isinstance(raw, str):
        return None
    try:
        data = base64.b64decode(raw, validate=True)
    except ValueError:
        return None
    return hashlib.sha256(data).hexdigest()


@dataclass
class LogReader:
    """Pages through ``GET /v2/logs`` and ``GET /v2/dlq`` with filters; counts pages read."""

    url: str
    token: str
    client: httpx.Client
    pages: int = 0

    def _get(self, path: str, params: dict[str, Any], what: str) -> dict[str, Any]:
        base = self.url.rstrip("/")
        try:
            # streamed and joined here, not kept on the response: httpx's responses sit in
            # reference cycles, so a page's bytes kept on one would live until the next
            # garbage collection (several pages at once)
            with self.client.stream("GET", f"{base}{path}", params=params,
                                    headers={"Authorization": f"Bearer {self.token}"}) as resp:
                status = resp.status_code
                data = b"".join(resp.iter_bytes())
        except httpx.HTTPError as exc:
            raise ServiceError(f"QStash at {redact_url(base)} unreachable while reading {what}: "
                               f"{exc}") from None
        if status >= 400:
            raise ServiceError(f"QStash at {redact_url(base)} refused reading {what}: "
                               f"{status} {data[:200].decode('utf-8', 'replace')}",
                               status=status)
        self.pages += 1
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ServiceError(f"QStash at {redact_url(base)} answered {what} with invalid "
                               f"JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ServiceError(f"QStash at {redact_url(base)} answered {what} with "
                               f"{type(body).__name__}, expected an object")
        return body

    def _paged(self, path: str, key: str, params: dict[str, Any],
               what: str) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page_params = {**params, "count": PAGE}
            if cursor:
                page_params["cursor"] = cursor
            page = self._get(path, page_params, what)
            yield from page.get(key) or page.get("events") or []
            cursor = page.get("cursor") or None
            if not cursor:
                return
        raise ServiceError(f"QStash's {what} did not end after {MAX_PAGES} pages")

    def logs(self, *, label: str, state: str | None = None, from_ms: int | None = None,
             to_ms: int | None = None) -> Iterator[dict[str, Any]]:
        """Log entries with ``label`` (newest first), optionally in one state and time range."""
        params: dict[str, Any] = {"label": label}
        if state is not None:
            params["state"] = state
        if from_ms is not None:
            params["fromDate"] = from_ms
        if to_ms is not None:
            params["toDate"] = to_ms
        return self._paged("/v2/logs", "logs", params, f"the logs of label {label}")

    def logs_of(self, message_ids: list[str]) -> Iterator[dict[str, Any]]:
        """Every log entry of these messages (newest first), 50 ids per request."""
        for i in range(0, len(message_ids), 50):
            chunk = message_ids[i:i + 50]
            yield from self._paged("/v2/logs", "logs", {"messageIds": ",".join(chunk)},
                                   f"the logs of {len(chunk)} message(s)")

    def url_group_endpoints(self, name: str) -> list[str]:
        """The endpoint URLs of QStash URL group ``name`` (``GET /v2/topics/{name}``)."""
        found = self._get(f"/v2/topics/{name}", {}, f"URL group {name}")
        return sorted({str(e["url"]) for e in found.get("endpoints") or []
                       if isinstance(e, dict) and e.get("url")})

    def dlq(self, *, label: str) -> Iterator[dict[str, Any]]:
        """QStash's DLQ entries with ``label``."""
        return self._paged("/v2/dlq", "messages", {"label": label}, f"the DLQ of label {label}")
