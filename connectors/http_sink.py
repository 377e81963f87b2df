"""Deliver messages straight to an HTTP endpoint, without QStash (at least once).

Each message is one request (``POST`` by default) carrying the body, ``Content-Type``, the Kafka
coordinates, key and headers as ``Kafka-*`` headers, the destination's extra headers, and
``Idempotency-Key: <dedup id>`` so the endpoint can drop the duplicates a crash or rebalance may
cause (the bridge commits only after a 2xx, so a record can be sent twice, never zero times).
Statuses are classified as everywhere (2xx delivered; 408, 425, 429, 5xx retried; other 4xx
dead-lettered) unless the destination's ``success_on`` / ``retry_on`` / ``fail_on`` names them.
Messages of one batch are sent in order on one connection; with ``stop_on_failure`` (ordered
routes) the first failure fails the rest of the batch unsent, so a retry resumes in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from connectors.destinations import DirectHttpDestination
from connectors.responses import release
from connectors.sink import DeliveryResult, Message, forward_headers
from connectors.statuses import error_for_status, server_wait
from migrator.config import redact_url
from migrator.errors import PermanentDeliveryError, RetryableDeliveryError

__all__ = ["HttpSink"]


class HttpSink:
    """One direct HTTP destination."""

    def __init__(
        self,
        dest: DirectHttpDestination,
        *,
        client: httpx.Client,
        name: str,
        stop_on_failure: bool = False,
    ) -> None:
        self.name = name
        self.dest = dest
        self._client = client
        self._stop = stop_on_failure
        self._static = dict(dest.headers)
        self._shown = redact_url(dest.url)  # in errors, logs and dead letters
        self._statuses: dict[int, str] = {
            **dict.fromkeys(dest.success_on, "success"),
            **dict.fromkeys(dest.retry_on, "retry"),
            **dict.fromkeys(dest.fail_on, "fail"),
        }

    def close(self) -> None:
        """The shared client is closed by its owner."""

    def _send(self, m: Message) -> DeliveryResult:
        headers = dict(self._static)
        headers["Content-Type"] = m.content_type
        headers["Idempotency-Key"] = m.dedup_id
        forward_headers(m.record, headers, "")
        try:
            resp = self._client.request(
                self.dest.method,
                self.dest.url,
                content=m.body,
                headers=headers,
                timeout=self.dest.timeout,
            )
        except httpx.TimeoutException as exc:  # maybe this record's doing: counts as an attempt
            return RetryableDeliveryError(f"{self._shown} timed out ({exc})")
        except httpx.TransportError as exc:  # no connection: the endpoint is down, an outage
            return RetryableDeliveryError(f"{self._shown} unreachable ({exc})", outage=True)
        release(resp)
        status = resp.status_code
        if status in self._statuses:
            return self._classified(status, resp)
        return error_for_status(status, resp.headers, resp.content, where=self._shown)

    def _classified(self, status: int, resp: httpx.Response) -> DeliveryResult:
        """A status the destination's ``success_on`` / ``retry_on`` / ``fail_on`` names."""
        outcome = self._statuses[status]
        if outcome == "success":
            return None
        error = error_for_status(status, resp.headers, resp.content, where=self._shown)
        # (None: a 2xx named in retry_on / fail_on)
        message = str(error) if error is not None else f"{self._shown} answered HTTP {status}"
        if outcome == "retry":
            return RetryableDeliveryError(message, status=status,
                                          retry_after=server_wait(resp.headers))
        return PermanentDeliveryError(message, status=status)

    def write_batch(self, messages: Sequence[Message]) -> list[DeliveryResult]:
        results: list[DeliveryResult] = []
        for i, m in enumerate(messages):
            result = self._send(m)
            results.append(result)
            if result is not None and self._stop:
                unsent = RetryableDeliveryError(  # not these records' doing: not counted
                    "not sent: an earlier record of this ordered batch failed",
                    retry_after=result.retry_after if isinstance(result, RetryableDeliveryError)
                    else None, outage=True,
                )
                results.extend([unsent] * (len(messages) - i - 1))
                break
        return results
