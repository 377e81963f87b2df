"""Delivery contract: backoff, Retry-After, 489, DLQ, callbacks, FIFO queues, flow control."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid

import httpx
import pytest
from qstash.log import LogState

from tests.fixtures.endpoint import ReceivedRequest, Reply
from tests.qstash_server.conftest import wait_until

pytestmark = pytest.mark.qstash


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _logs(server, mid):
    r = httpx.get(f"{server.url}/v2/events", params={"messageId": mid, "count": 1000},
                  headers=server.headers)
    return r.json()["events"][::-1]


def test_fifo_queue_holds_order_through_retries(qstash_server, endpoint_factory):
    attempts: dict[str, int] = {}

    def responder(req: ReceivedRequest) -> Reply:
        n = attempts.get(req.path, 0)
        attempts[req.path] = n + 1
        if req.path == "/m1" and n < 2:
            return Reply(500, b"not yet")
        return Reply(200)

    ep = endpoint_factory(responder)
    client = qstash_server.client()
    queue = _name("fifo")
    client.queue.upsert(queue, parallelism=1)
    for i in range(5):
        client.message.enqueue(queue=queue, url=f"{ep.url}/m{i}", body=str(i), retries=3)
    reqs = ep.wait_for(7)
    assert [r.path for r in reqs] == ["/m0", "/m1", "/m1", "/m1", "/m2", "/m3", "/m4"]
    assert [r.headers["upstash-retried"] for r in reqs[1:4]] == ["0", "1", "2"]
    wait_until(lambda: client.queue.get(queue).lag, until=lambda lag: lag == 0, what="queue lag 0")


def test_fifo_queue_waits_for_callback_and_pauses(qstash_server, endpoint_factory):
    order: list[str] = []
    lock = threading.Lock()

    def responder(req: ReceivedRequest) -> Reply:
        with lock:
            order.append(req.path)
        return Reply(200, b"done")

    ep = endpoint_factory(responder)
    client = qstash_server.client()
    queue = _name("cbq")
    client.queue.upsert(queue, parallelism=1, paused=True)
    client.message.enqueue(queue=queue, url=f"{ep.url}/a", body="a", callback=f"{ep.url}/cb-a")
    client.message.enqueue(queue=queue, url=f"{ep.url}/b", body="b")
    assert client.queue.get(queue).lag == 2
    time.sleep(0.3)
    assert order == []  # paused: nothing delivered
    client.queue.resume(queue)
    ep.wait_for(3)
    assert order == ["/a", "/cb-a", "/b"]


def test_retry_after_header_sets_next_delivery(qstash_server_factory, endpoint_factory):
    server = qstash_server_factory(backoff_scale=0.001)
    answers = iter([Reply(429, b"slow down", {"Retry-After": "120"}), Reply(200)])
    ep = endpoint_factory(lambda _r: next(answers))
    mid = server.client().message.publish(url=ep.url, body="x").message_id
    ep.wait_for(2)
    retry = next(e for e in _logs(server, mid) if e["state"] == "RETRY")
    # 120 s asked for, scaled by 0.001 -> 120 ms (the default backoff would be ~12 ms)
    assert retry["nextDeliveryTime"] - retry["time"] >= 100
    assert retry["responseStatus"] == 429


def test_retry_delay_expression_is_used(qstash_server_factory, endpoint_factory):
    server = qstash_server_factory(backoff_scale=0.001)
    answers = iter([Reply(500), Reply(500), Reply(200)])
    ep = endpoint_factory(lambda _r: next(answers))
    mid = server.client().message.publish(
        url=ep.url, body="x", retries=2, retry_delay="100000 * (1 + retried)"
    ).message_id
    ep.wait_for(3)
    retries = [e for e in _logs(server, mid) if e["state"] == "RETRY"]
    gaps = [e["nextDeliveryTime"] - e["time"] for e in retries]
    assert 95 <= gaps[0] <= 150 and 195 <= gaps[1] <= 260


def test_489_non_retryable_goes_straight_to_dlq(qstash_server, endpoint_factory):
    ep = endpoint_factory(
        lambda _r: Reply(489, b"bad payload", {"Upstash-NonRetryable-Error": "true"})
    )
    client = qstash_server.client()
    label = _name("nr")
    mid = client.message.publish(url=ep.url, body="p", retries=5, label=label).message_id
    dlq = wait_until(lambda: client.dlq.list(filter={"label": label}).messages)
    assert dlq[0].message_id == mid and dlq[0].response_status == 489
    assert len(ep.requests) == 1
    assert LogState.FAILED in {e.state for e in client.log.list(filter={"message_id": mid}).logs}


def test_exhausted_message_goes_to_dlq_with_callbacks(qstash_server, endpoint_factory):
    hooks = endpoint_factory()
    target = endpoint_factory(lambda _r: Reply(500, b"nope"))
    client = qstash_server.client()
    res = client.message.publish(
        url=f"{target.url}/t",
        body="payload",
        retries=1,
        callback=f"{hooks.url}/cb",
        failure_callback=f"{hooks.url}/fail",
        failure_callback_headers={"Forward-Fail-Tag": "ft"},
        headers={"X-Src": "s"},
    )
    reqs = hooks.wait_for(3)
    callbacks = [r for r in reqs if r.path == "/cb"]
    [failure] = [r for r in reqs if r.path == "/fail"]
    assert len(callbacks) == 2  # one per attempt
    cb = json.loads(callbacks[-1].body)
    assert cb["status"] == 500
    assert base64.b64decode(cb["body"]) == b"nope"
    assert cb["sourceMessageId"] == res.message_id
    assert base64.b64decode(cb["sourceBody"]) == b"payload"
    assert cb["sourceHeader"]["X-Src"] == ["s"]
    assert (cb["retried"], cb["maxRetries"]) == (1, 1)
    assert cb["url"] == f"{target.url}/t"
    fb = json.loads(failure.body)
    assert fb["dlqId"] and fb["sourceMessageId"] == res.message_id
    assert failure.headers["fail-tag"] == "ft"
    # callbacks are signed like any delivery
    qstash_server.receiver().verify(
        signature=failure.headers["upstash-signature"], body=failure.body.decode()
    )
    assert any(m.dlq_id == fb["dlqId"] for m in client.dlq.list().messages)


def test_not_before_and_delay_hold_delivery(qstash_server, endpoint):
    client = qstash_server.client()
    not_before = int(time.time()) + 2
    nb = client.message.publish(url=f"{endpoint.url}/nb", body="x", not_before=not_before)
    d = client.message.publish(url=f"{endpoint.url}/d", body="y", delay="1s")
    assert client.message.get(nb.message_id).not_before == not_before * 1000
    delayed = client.message.get(d.message_id)
    assert delayed.not_before - delayed.created_at == 1000
    reqs = endpoint.wait_for(2)
    assert {r.path for r in reqs} == {"/nb", "/d"}
    for mid, earliest in ((nb.message_id, not_before * 1000),
                          (d.message_id, delayed.not_before)):
        active = [e for e in _logs(qstash_server, mid) if e["state"] == "ACTIVE"]
        assert active and active[0]["time"] >= earliest  # the server held it until then


def test_flow_control_parallelism_limits_concurrency(qstash_server, endpoint_factory):
    active = 0
    peak = 0
    lock = threading.Lock()

    def responder(_req: ReceivedRequest) -> Reply:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.1)
        with lock:
            active -= 1
        return Reply(200)

    ep = endpoint_factory(responder)
    client = qstash_server.client()
    key = _name("par")
    for i in range(6):
        client.message.publish(url=f"{ep.url}/{i}", body="x",
                               flow_control={"key": key, "parallelism": 2})
    assert len(ep.wait_for(6)) == 6
    assert peak == 2  # two at a time: never more, and not one by one either


def test_timeout_counts_as_failed_attempt(qstash_server, endpoint_factory):
    answers = iter([0.8, 0.0])

    def responder(_req: ReceivedRequest) -> Reply:
        time.sleep(next(answers))
        return Reply(200)

    ep = endpoint_factory(responder)
    client = qstash_server.client()
    mid = client.message.publish(url=ep.url, body="x", timeout="0.2s", retries=1).message_id
    ep.wait_for(2)
    wait_until(lambda: [e["state"] for e in _logs(qstash_server, mid)],
               until=lambda states: "DELIVERED" in states, what=f"{mid} DELIVERED")
    errors = [e for e in _logs(qstash_server, mid) if e["state"] == "ERROR"]
    assert errors and "timed out" in errors[0]["error"]


def test_flow_control_rate_waitlist_reset_and_pin(qstash_server, endpoint):
    client = qstash_server.client()
    key = _name("rate")
    for i in range(5):
        client.message.publish(url=f"{endpoint.url}/r{i}", body="x",
                               flow_control={"key": key, "rate": 1, "period": "1h"})
    endpoint.wait_for(1)
    info = wait_until(lambda: client.flow_control.get(key), until=lambda i: i.wait_list_size == 4,
                      what="4 messages on the wait list")
    assert (info.rate_max, info.rate_count, info.rate_period) == (1, 1, 3600)
    assert len(endpoint.requests) == 1  # the rest wait; they are never rejected
    client.flow_control.reset_rate(key)
    endpoint.wait_for(2)
    wait_until(lambda: client.flow_control.get(key).wait_list_size, until=lambda k: k == 3,
               what="3 messages on the wait list")
    client.flow_control.pause(key)
    client.flow_control.pin(key, {"rate": 100, "period": 1})
    assert len(endpoint.requests) == 2  # paused: pinning does not release anything
    client.flow_control.resume(key)
    reqs = endpoint.wait_for(5)
    assert sorted(r.path for r in reqs) == [f"/r{i}" for i in range(5)]


def test_retry_now_releases_a_delayed_message(qstash_server, endpoint):
    client = qstash_server.client()
    mid = client.message.publish(url=f"{endpoint.url}/now", body="x", delay="1h").message_id
    r = httpx.post(f"{qstash_server.url}/v2/messages/{mid}/retry", headers=qstash_server.headers)
    assert r.status_code == 200
    [req] = endpoint.wait_for(1)
    assert req.headers["upstash-message-id"] == mid
    again = httpx.post(f"{qstash_server.url}/v2/messages/{mid}/retry",
                       headers=qstash_server.headers)
    assert again.status_code == 404
    queue = _name("rq")
    client.queue.upsert(queue, paused=True)
    qid = client.message.enqueue(queue=queue, url=endpoint.url, body="q").message_id
    queued = httpx.post(f"{qstash_server.url}/v2/messages/{qid}/retry",
                        headers=qstash_server.headers)
    assert queued.status_code == 400
    client.queue.delete(queue)
