"""QStashAdmin's retry policy and error messages: over an httpx mock transport (pure logic), and
against real HTTP servers on 127.0.0.1 and the local QStash server (status told by the answer's
HTTP status, never by the SDK's error text)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from migrator.config import QStashConnection
from migrator.errors import ServiceError
from migrator.plan.admin import QStashAdmin
from tests.fixtures.endpoint import RecordingEndpoint, Reply
from tests.fixtures.qstash import QStashServer

TOKEN = "qstash-token-SECRET-7f3a"


def admin_answering(*replies: httpx.Response) -> tuple[QStashAdmin, list[httpx.Request], list[float]]:
    seen: list[httpx.Request] = []
    sleeps: list[float] = []
    queue = list(replies)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    admin = QStashAdmin(QStashConnection(url="http://127.0.0.1:9", token=SecretStr(TOKEN)),
                        attempts=4, sleep=sleeps.append, transport=httpx.MockTransport(handle))
    return admin, seen, sleeps


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_one_clear_error_without_retries(status: int) -> None:
    admin, seen, sleeps = admin_answering(httpx.Response(status, json={"error": "Unauthorized"}))
    with pytest.raises(ServiceError) as caught:
        admin.queues()
    msg = str(caught.value)
    assert msg.startswith(f"QStash at http://127.0.0.1:9 refused the token ({status}) to list "
                          "queues; check QSTASH_TOKEN or --qstash-token"), msg
    assert caught.value.status == status and TOKEN not in msg
    assert len(seen) == 1 and sleeps == []
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"  # sent, never echoed


def test_other_client_errors_are_not_retried() -> None:
    admin, seen, sleeps = admin_answering(httpx.Response(400, json={"error": "bad queue name"}))
    with pytest.raises(ServiceError, match=r"QStash refused to delete queue q: .*400.*bad queue"):
        admin.delete_queue("q")
    assert len(seen) == 1 and sleeps == []


def test_daily_quota_is_not_retried() -> None:
    admin, seen, _ = admin_answering(httpx.Response(
        429, headers={"RateLimit-Limit": "1000", "RateLimit-Remaining": "0",
                      "RateLimit-Reset": "1"}))
    with pytest.raises(ServiceError) as caught:
        admin.queues()
    assert caught.value.status == 429 and len(seen) == 1


def test_burst_429_and_5xx_are_retried_with_growing_backoff_then_succeed() -> None:
    burst = httpx.Response(429, headers={"Burst-RateLimit-Limit": "1",
                                         "Burst-RateLimit-Remaining": "0"})
    admin, seen, sleeps = admin_answering(
        burst, httpx.Response(502), httpx.Response(503),
        httpx.Response(200, json=[{"name": "q", "parallelism": 1, "paused": False, "lag": 0,
                                   "createdAt": 0, "updatedAt": 0}]))
    assert [q.name for q in admin.queues()] == ["q"]
    assert len(seen) == 4 and sleeps == [0.25, 0.5, 1.0]


def test_retries_exhausted_name_the_operation_and_the_url() -> None:
    admin, seen, sleeps = admin_answering(httpx.Response(503))
    with pytest.raises(ServiceError, match=r"could not list URL groups after 4 attempts "
                                           r"\(server error 503\); check http://127.0.0.1:9"):
        admin.url_groups()
    assert len(seen) == 4 and len(sleeps) == 3


QUEUES = json.dumps([{"name": "q", "parallelism": 1, "paused": False, "lag": 0, "createdAt": 0,
                      "updatedAt": 0}]).encode()


def served_admin(endpoint_factory: Callable[..., RecordingEndpoint], *replies: Reply,
                 ) -> tuple[QStashAdmin, RecordingEndpoint, list[float]]:
    """An admin whose SDK talks (through the default network stack) to a real server on
    127.0.0.1 that answers ``replies`` in turn, the last one from then on."""
    queue = list(replies)
    sleeps: list[float] = []
    server = endpoint_factory(lambda _req: queue.pop(0) if len(queue) > 1 else queue[0])
    admin = QStashAdmin(QStashConnection(url=server.url, token=SecretStr(TOKEN)),
                        attempts=4, sleep=sleeps.append)
    return admin, server, sleeps


def test_real_server_401_is_the_token_message(endpoint_factory) -> None:
    admin, server, sleeps = served_admin(endpoint_factory, Reply(401, b'{"error":"Unauthorized"}'))
    with admin, pytest.raises(ServiceError) as caught:
        admin.queues()
    assert caught.value.status == 401 and "refused the token (401) to list queues" in str(caught.value)
    assert len(server.requests) == 1 and sleeps == [] and TOKEN not in str(caught.value)


def test_real_server_429_waits_until_the_burst_reset(endpoint_factory) -> None:
    reset = time.time() + 3
    burst = Reply(429, b"{}", {"Burst-RateLimit-Limit": "1", "Burst-RateLimit-Remaining": "0",
                               "Burst-RateLimit-Reset": f"{reset:.3f}"})
    admin, server, sleeps = served_admin(endpoint_factory, burst, Reply(200, QUEUES))
    with admin:
        assert [q.name for q in admin.queues()] == ["q"]
    assert len(server.requests) == 2 and len(sleeps) == 1
    assert 1.0 < sleeps[0] <= 3.0, sleeps  # until the reset, not the 0.25 s backoff


def test_real_server_503_is_retried_with_backoff(endpoint_factory) -> None:
    admin, server, sleeps = served_admin(
        endpoint_factory, Reply(503, b"down"), Reply(503, b"down"), Reply(200, QUEUES))
    with admin:
        assert [q.name for q in admin.queues()] == ["q"]
    assert len(server.requests) == 3 and sleeps == [0.25, 0.5]


def test_real_server_400_is_permanent_whatever_its_body_says(endpoint_factory) -> None:
    # the body mimics the SDK's own wording for a server error: a body naming another status changes nothing
    admin, server, sleeps = served_admin(
        endpoint_factory, Reply(400, b"Request failed with status: 503, upstream"))
    with admin, pytest.raises(ServiceError, match="QStash refused to delete queue q") as caught:
        admin.delete_queue("q")
    assert caught.value.status == 400 and len(server.requests) == 1 and sleeps == []


def test_local_qstash_server_refuses_a_wrong_token(qstash_server: QStashServer) -> None:
    wrong = "not-the-token-" + qstash_server.token[-4:]
    with QStashAdmin(QStashConnection(url=qstash_server.url, token=SecretStr(wrong)),
                     attempts=2, sleep=lambda _s: None) as admin, \
            pytest.raises(ServiceError) as caught:
        admin.queues()
    assert caught.value.status == 401 and "refused the token (401)" in str(caught.value)
    assert wrong not in str(caught.value)
