"""What an HTTP answer means for a delivery: delivered, retry (and when), or give up.

* :func:`error_for_status` turns an HTTP answer into ``None`` (delivered), a
  :class:`RetryableDeliveryError` (408, 425, 429, 5xx) carrying the server's requested wait, or a
  :class:`PermanentDeliveryError` (412 and every other 4xx).
* :func:`server_wait` reads ``Retry-After`` (seconds or an HTTP date) and the reset headers
  QStash sends on 429 (``Burst-RateLimit-Reset``, ``RateLimit-Reset``: unix time of the reset;
  ``X-RateLimit-Reset``).
* :class:`CredentialsRefusedError`: the destination refused the bridge's own credentials (QStash
  answering 401/403): no record can get through, so the bridge stops instead of dead-lettering.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from migrator.errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError

__all__ = ["CredentialsRefusedError", "error_for_status", "server_wait"]


class CredentialsRefusedError(PermanentDeliveryError):
    """The destination refused the credentials the bridge sends (not the record): fatal for the
    bridge, which stops with this message rather than dead-letter every record."""


_RETRYABLE = frozenset({408, 425, 429})
_RESET_HEADERS = (
    "retry-after",
    "burst-ratelimit-reset",
    "ratelimit-reset",
    "x-ratelimit-reset",
    "x-ratelimit-reset-requests",
)


def server_wait(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked us to wait, or None. ``headers`` keys are matched lower-case."""
    now = time.time() if now is None else now
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in _RESET_HEADERS:
        raw = lowered.get(name)
        if raw is None or not raw.strip():
            continue
        raw = raw.strip()
        try:
            value = float(raw)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(raw) if "," in raw else None
            if parsed is None:
                continue
            return max(0.0, parsed.timestamp() - now)
        if name == "retry-after":
            return max(0.0, value)
        if value > 1e12:  # unix milliseconds
            return max(0.0, value / 1000.0 - now)
        if value > 1e9:  # unix seconds
            return max(0.0, value - now)
        return max(0.0, value)  # a relative number of seconds
    return None


def error_for_status(
    status: int,
    headers: Mapping[str, str],
    body: bytes = b"",
    *,
    where: str = "destination",
    outage: bool = False,
) -> DeliveryError | None:
    """None for 2xx; otherwise the delivery error this status means (``outage`` marks a
    retryable one as the whole destination's, see :class:`RetryableDeliveryError`)."""
    if 200 <= status < 300:
        return None
    snippet = body[:200].decode("utf-8", "replace").strip()
    message = f"{where} answered HTTP {status}" + (f": {snippet}" if snippet else "")
    if status in _RETRYABLE or status >= 500:
        return RetryableDeliveryError(message, status=status, retry_after=server_wait(headers),
                                      outage=outage)
    return PermanentDeliveryError(message, status=status)
