"""Order at the endpoint, through the official SDK: FIFO queues keep it, flow control does not.

Upstash's documentation (queues page): "the next message will be ACTIVE only after the last
message is either DELIVERED or FAILED", and it also waits for the previous message's callback
and failure callback. A flow-control key promises no order: its slot is freed when an attempt
fails, so the key's later messages overtake a retry (measured on Upstash: five messages, the
first refused once, arrive ``[1, 2, 3, 4, 0]``). Every test here uses a real endpoint on
127.0.0.1 that records each attempt as it arrives (before answering).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.fixtures.endpoint import ReceivedRequest, RecordingEndpoint, Reply

pytestmark = pytest.mark.qstash


@dataclass
class Arrivals:
    """What reached the endpoint, in arrival order: (path, Upstash-Retried)."""

    seen: list[tuple[str, int]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def add(self, req: ReceivedRequest) -> None:
        with self.cond:
            self.seen.append((req.path, int(req.headers.get("upstash-retried", "0"))))
            self.cond.notify_all()

    def wait(self, what: str, done: Callable[[list[tuple[str, int]]], bool],
             timeout: float = 60.0) -> list[tuple[str, int]]:
        """Wait until ``done(seen)``; fail with what arrived when it never happens."""
        with self.cond:
            if not self.cond.wait_for(lambda: done(self.seen), timeout=timeout):
                pytest.fail(f"{what}: not within {timeout}s; arrivals: {self.seen}")
            return list(self.seen)


def _delivered(seen: list[tuple[str, int]], answers: dict[tuple[str, int], int]) -> list[str]:
    """Paths of the attempts that were answered 2xx, in arrival order."""
    return [path for path, retried in seen if 200 <= answers.get((path, retried), 200) < 300]


def _endpoint(factory: Callable[..., RecordingEndpoint], arrivals: Arrivals,
              answer: Callable[[str, int], Reply]) -> RecordingEndpoint:
    def responder(req: ReceivedRequest) -> Reply:
        arrivals.add(req)
        return answer(req.path, int(req.headers.get("upstash-retried", "0")))

    return factory(responder)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _refuse_first_once(reply: Reply) -> Callable[[str, int], Reply]:
    def answer(path: str, retried: int) -> Reply:
        return reply if path == "/m0" and retried == 0 else Reply(200)

    return answer


# ------------------------------------------------------------------ flow control: no order
def test_flow_control_parallelism_1_lets_later_messages_overtake_a_retry(
    qstash_server: Any, endpoint_factory: Callable[..., RecordingEndpoint]
) -> None:
    """Five messages on one key, parallelism 1, the first refused once: ``[1, 2, 3, 4, 0]``."""
    arrivals = Arrivals()
    # the refusal asks for 1 h (36 s at the test server's backoff scale): the retry waits
    # until the test releases it, so the outcome does not depend on timing
    ep = _endpoint(endpoint_factory, arrivals,
                   _refuse_first_once(Reply(503, b"deploying", {"Retry-After": "3600"})))
    client = qstash_server.client()
    key = _name("fc-order")
    ids = [r.message_id for r in client.message.batch_json([
        {"url": f"{ep.url}/m{i}", "body": {"n": i},
         "flow_control": {"key": key, "parallelism": 1}, "retries": 3}
        for i in range(5)
    ])]
    arrivals.wait("the key's later messages delivered while the first waits for its retry",
                  lambda seen: {p for p, _ in seen} >= {f"/m{i}" for i in range(1, 5)})
    r = httpx.post(f"{qstash_server.url}/v2/messages/{ids[0]}/retry", headers=qstash_server.headers)
    assert r.status_code == 200, r.text
    seen = arrivals.wait("the first message's retry", lambda seen: ("/m0", 1) in seen)
    answers = {("/m0", 0): 503}
    assert _delivered(seen, answers) == ["/m1", "/m2", "/m3", "/m4", "/m0"]
    assert seen[0] == ("/m0", 0)


# ------------------------------------------------------------------ FIFO queues: order kept
REFUSALS = {
    "503": Reply(503, b"deploying"),
    "429-retry-after": Reply(429, b"slow down", {"Retry-After": "100"}),  # 1 s at scale 0.01
    "503-retry-after": Reply(503, b"deploying", {"Retry-After": "100"}),
}


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_fifo_queue_keeps_order_when_the_first_is_refused_once(
    qstash_server: Any, endpoint_factory: Callable[..., RecordingEndpoint], refusal: str
) -> None:
    arrivals = Arrivals()
    ep = _endpoint(endpoint_factory, arrivals, _refuse_first_once(REFUSALS[refusal]))
    client = qstash_server.client()
    queue = _name("fifo-order")
    client.queue.upsert(queue, parallelism=1)
    for i in range(5):
        client.message.enqueue_json(queue=queue, url=f"{ep.url}/m{i}", body={"n": i}, retries=3)
    seen = arrivals.wait("five deliveries", lambda seen: len(seen) >= 6)
    assert seen == [("/m0", 0), ("/m0", 1), ("/m1", 0), ("/m2", 0), ("/m3", 0), ("/m4", 0)]


def test_fifo_queue_keeps_order_through_a_timeout(
    qstash_server: Any, endpoint_factory: Callable[..., RecordingEndpoint]
) -> None:
    arrivals = Arrivals()

    def answer(path: str, retried: int) -> Reply:
        if path == "/m0" and retried == 0:
            time.sleep(1.0)  # longer than the message's 0.3 s timeout
        return Reply(200)

    ep = _endpoint(endpoint_factory, arrivals, answer)
    client = qstash_server.client()
    queue = _name("fifo-timeout")
    client.queue.upsert(queue, parallelism=1)
    for i in range(5):
        client.message.enqueue_json(queue=queue, url=f"{ep.url}/m{i}", body={"n": i}, retries=3,
                                    timeout="0.3s" if i == 0 else None)
    seen = arrivals.wait("five deliveries", lambda seen: len(seen) >= 6)
    assert seen == [("/m0", 0), ("/m0", 1), ("/m1", 0), ("/m2", 0), ("/m3", 0), ("/m4", 0)]


def test_fifo_queue_waits_for_each_final_callback_through_retries(
    qstash_server: Any, endpoint_factory: Callable[..., RecordingEndpoint]
) -> None:
    arrivals = Arrivals()
    ep = _endpoint(endpoint_factory, arrivals, _refuse_first_once(Reply(503, b"deploying")))
    client = qstash_server.client()
    queue = _name("fifo-cb")
    client.queue.upsert(queue, parallelism=1)
    for i in range(4):
        client.message.enqueue_json(queue=queue, url=f"{ep.url}/m{i}", body={"n": i}, retries=3,
                                    callback=f"{ep.url}/cb{i}")
    # four messages, one retry, and a callback per attempt (five)
    seen = arrivals.wait("every attempt and callback", lambda seen: len(seen) >= 10)
    paths = [p for p, _ in seen]
    assert [p for p in paths if p.startswith("/m")] == ["/m0", "/m0", "/m1", "/m2", "/m3"]
    for i in range(3):
        # the final callback of message i (the last /cb{i}) before message i+1 starts
        last_cb = max(n for n, p in enumerate(paths) if p == f"/cb{i}")
        assert last_cb < paths.index(f"/m{i + 1}"), paths
    cb_bodies = [json.loads(r.body) for r in ep.requests if r.path == "/cb0"]
    assert sorted(b["status"] for b in cb_bodies) == [200, 503]


def test_fifo_queue_paused_during_a_retry_resumes_with_that_message(
    qstash_server: Any, endpoint_factory: Callable[..., RecordingEndpoint]
) -> None:
    arrivals = Arrivals()
    # 2 s at the test server's backoff scale
    ep = _endpoint(endpoint_factory, arrivals,
                   _refuse_first_once(Reply(503, b"deploying", {"Retry-After": "200"})))
    client = qstash_server.client()
    queue = _name("fifo-pause")
    client.queue.upsert(queue, parallelism=1)
    ids = [client.message.enqueue_json(queue=queue, url=f"{ep.url}/m{i}", body={"n": i},
                                       retries=3).message_id for i in range(5)]
    arrivals.wait("the first attempt", lambda seen: len(seen) >= 1)
    client.queue.pause(queue)
    retry_at = _retry_time(qstash_server, ids[0])
    while time.time() * 1000 < retry_at + 500:  # past the retry's due time, paused
        time.sleep(0.1)
    assert arrivals.seen == [("/m0", 0)]  # paused: neither the retry nor the next message
    assert client.queue.get(queue).lag == 5
    client.queue.resume(queue)
    seen = arrivals.wait("five deliveries after resuming", lambda seen: len(seen) >= 6)
    assert seen == [("/m0", 0), ("/m0", 1), ("/m1", 0), ("/m2", 0), ("/m3", 0), ("/m4", 0)]


def _retry_time(server: Any, message_id: str) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = httpx.get(f"{server.url}/v2/events", params={"messageId": message_id},
                           headers=server.headers).json()["events"]
        retry = [e for e in events if e["state"] == "RETRY"]
        if retry:
            return int(retry[0]["nextDeliveryTime"])
        time.sleep(0.05)
    pytest.fail(f"no RETRY event for {message_id}; events: {events}")


def test_fifo_queue_moves_on_after_a_message_exhausts_its_retries(
    qstash_server: Any, endpoint_factory: Callable[..., RecordingEndpoint]
) -> None:
    arrivals = Arrivals()

    def answer(path: str, retried: int) -> Reply:
        return Reply(503, b"broken") if path == "/m1" else Reply(200)

    ep = _endpoint(endpoint_factory, arrivals, answer)
    client = qstash_server.client()
    queue = _name("fifo-dlq")
    client.queue.upsert(queue, parallelism=1)
    ids = [client.message.enqueue_json(queue=queue, url=f"{ep.url}/m{i}", body={"n": i},
                                       retries=1 if i == 1 else 3,
                                       failure_callback=f"{ep.url}/failed" if i == 1 else None
                                       ).message_id for i in range(4)]
    seen = arrivals.wait("every attempt", lambda seen: len(seen) >= 6)
    # m1: the first attempt and its one retry, then its failure callback, then the queue moves on
    assert [p for p, _ in seen] == ["/m0", "/m1", "/m1", "/failed", "/m2", "/m3"]
    dlq = client.dlq.list(filter={"queue": queue}).messages
    assert [(m.message_id, m.response_status, m.queue) for m in dlq] == [(ids[1], 503, queue)]
