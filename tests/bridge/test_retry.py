from __future__ import annotations

import email.utils
import random

from migrator.bridge.config import RetryPolicy
from migrator.bridge.retry import Backoff, error_for_status, server_wait
from migrator.errors import PermanentDeliveryError, RetryableDeliveryError


def test_status_classes() -> None:
    assert error_for_status(200, {}) is None
    assert error_for_status(202, {}) is None
    for status in (408, 429, 500, 502, 503, 504):
        assert isinstance(error_for_status(status, {}), RetryableDeliveryError)
    for status in (400, 401, 404, 412, 422):
        err = error_for_status(status, {}, b'{"error":"too large"}', where="QStash")
        assert isinstance(err, PermanentDeliveryError) and err.status == status
    err = error_for_status(412, {}, b'{"error":"too large"}', where="QStash")
    assert 'QStash answered HTTP 412: {"error":"too large"}' in str(err)


def test_server_wait_reads_retry_after_and_qstash_reset_headers() -> None:
    now = 1_800_000_000.0
    assert server_wait({"Retry-After": "3"}, now) == 3.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert server_wait({"retry-after": date}, now) == 7.0
    assert server_wait({"Burst-RateLimit-Reset": str(int(now) + 2)}, now) == 2.0
    assert server_wait({"RateLimit-Reset": str(int(now * 1000) + 1500)}, now) == 1.5
    assert server_wait({"X-RateLimit-Reset": "4"}, now) == 4.0
    assert server_wait({"Retry-After": "soon"}, now) is None
    assert server_wait({}, now) is None
    err = error_for_status(429, {"Burst-RateLimit-Reset": "9999999999"})
    assert isinstance(err, RetryableDeliveryError) and err.retry_after and err.retry_after > 0


def test_backoff_grows_caps_and_jitters() -> None:
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.1, max_backoff=1.0, jitter=0.0, cap=3)
    b = Backoff(policy)
    assert [b.wait(n) for n in (1, 2, 3, 4, 5, 9)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.wait(1, RetryableDeliveryError("x", retry_after=2.0)) == 2.0
    assert b.wait(1, RetryableDeliveryError("x", retry_after=50.0)) == 3  # capped
    assert not b.exhausted(4) and b.exhausted(5)
    assert b.wait(5000) == 1.0  # a long outage keeps counting attempts: no float overflow
    jittery = Backoff(RetryPolicy(initial_backoff=1.0, jitter=0.5), random.Random(1))
    waits = {jittery.wait(1) for _ in range(20)}
    assert len(waits) > 1 and all(0.5 <= w <= 1.5 for w in waits)
