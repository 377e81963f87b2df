"""Cancel what QStash still holds for a replaced group's hand-off.

Every QStash message the bridge publishes for a replaced group carries the hand-off's cutover
label (:func:`~migrator.cutover.scope.cutover_label`). A rollback cancels by that label
(``DELETE /v2/messages?label=...&async=true``): messages accepted but not yet delivered,
including ones waiting in a queue, on a delay or between retries. The cancel may take effect
later than its answer (QStash runs it as a background bulk action), and a message QStash is
delivering at that moment is not interrupted; :mod:`migrator.cutover.outcome` waits for every
message's outcome.
"""

from __future__ import annotations

import logging

import httpx

from migrator.config import redact_url
from migrator.errors import ServiceError

__all__ = ["cancel_label"]

log = logging.getLogger(__name__)


def cancel_label(url: str, token: str, label: str, *, client: httpx.Client | None = None) -> int:
    """Ask QStash to cancel every message with ``label``; how many it says matched.

    ``async=true``: QStash's filter-based cancel is a background bulk action; without it the
    request waits up to a minute for the action and then answers 429 (which would read as a
    refusal) although the action keeps running. With it QStash answers at once (202,
    ``cancelled`` = how many matched, ``actionId``) and the messages end ``CANCELED`` later;
    until then one that falls due may still be delivered. The rollback does not trust the count:
    it waits until every message of the hand-off is final in the logs
    (:func:`migrator.cutover.outcome.settle`). A server that predates bulk actions ignores the
    parameter and cancels synchronously."""
    base = url.rstrip("/")
    own = client is None
    http = client or httpx.Client(timeout=30.0)
    try:
        resp = http.delete(f"{base}/v2/messages", params={"label": label, "async": "true"},
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
    log.info("asked QStash to cancel %d message(s) labelled %s", cancelled, label)
    return cancelled
