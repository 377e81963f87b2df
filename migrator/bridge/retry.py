"""How long to wait before the next attempt.

:class:`Backoff` computes exponential backoff with jitter, honouring a server wait up to a cap.
Which failures are retried is the sinks' classification (:mod:`connectors.statuses`, re-exported
here: :func:`error_for_status`, :func:`server_wait`).
"""

from __future__ import annotations

import random

from connectors.statuses import error_for_status, server_wait
from migrator.bridge.config import RetryPolicy
from migrator.errors import DeliveryError, RetryableDeliveryError

__all__ = ["Backoff", "error_for_status", "server_wait"]


class Backoff:
    """Waits between attempts: ``initial * 2**(attempt-1)`` capped at ``max_backoff``, with
    +-``jitter``; a server-requested wait replaces it, capped at ``cap``."""

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None) -> None:
        self.policy = policy
        self._rng = rng or random.Random()

    def wait(self, attempts: int, error: DeliveryError | None = None) -> float:
        """Seconds to wait after ``attempts`` failed attempts (attempts >= 1)."""
        p = self.policy
        asked = error.retry_after if isinstance(error, RetryableDeliveryError) else None
        if asked is not None:
            return min(p.cap, asked)
        # (the exponent is capped: during a long outage attempts keep counting, and 2**1024
        # no longer converts to a float)
        base = min(p.max_backoff, p.initial_backoff * (2 ** min(max(0, attempts - 1), 62)))
        spread = base * p.jitter
        return float(max(0.0, base + self._rng.uniform(-spread, spread)))

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.policy.max_attempts
