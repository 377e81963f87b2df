"""Cancel what QStash still holds for a replaced group's hand-off.

Every QStash message the bridge publishes for a replaced group carries the hand-off's cutover
label (:func:`~migrator.cutover.scope.cutover_label`). A rollback cancels by that label
(``DELETE /v2/messages?label=...``): messages accepted but not yet delivered, including ones
waiting in a queue, on a delay or between retries. A message QStash is delivering at that moment
is not interrupted; :mod:`migrator.cutover.outcome` waits for its outcome.
"""

from __future__ import annotations

import logging

import httpx

from migrator.config import redact_url
from migrator.errors import ServiceError

__all__ = ["cancel_label"]

log = logging.getLogger(__name__)


def cancel_label(url: str, token: str, label: str, *, client: httpx.Client | None = None) -> int:
    """Cancel every message with ``label``; how many QStash says it cancelled."""
    base = url.rstrip("/")
    own = client is None
    http = client or httpx.Client(timeout=30.0)
    try:
        resp = http.delete(f"{base}/v2/messages", params={"label": label},
                           headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise ServiceError(f"QStash at {redact_url(base)} unreachable: {exc}") from None
    finally:
        if own:
            http.close()
    if resp.status_code >= 400:
        raise ServiceError(
            f"QStash at {redact_url(base)} refused cancelling the messages labelled {label}: "
            f"{resp.status_code} {resp.text[:200]}", status=resp.status_code)
    body = resp.json() if resp.content else {}
    cancelled = int(body.get("cancelled", 0)) if isinstance(body, dict) else 0
    log.info("cancelled %d QStash message(s) labelled %s", cancelled, label)
    return cancelled
