"""The official sync ``qstash.QStash`` client drives every namespace against the server."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import pytest
from qstash.errors import QStashError
from qstash.log import LogState

from tests.fixtures.endpoint import Reply
from tests.qstash_server.conftest import wait_until

pytestmark = pytest.mark.qstash


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_message_namespace(qstash_server, endpoint_factory):
    client = qstash_server.client()
    slow = endpoint_factory()
    # a delayed message can be read back and cancelled
    res = client.message.publish_json(
        url=f"{slow.url}/later",
        body={"a": 1},
        delay="1h",
        headers={"X-Trace": "t1"},
        retries=2,
        retry_delay="1000 * (1 + retried)",
        callback=f"{slow.url}/cb",
        callback_headers={"Forward-Cb-Tag": "c"},
        failure_callback=f"{slow.url}/fcb",
        label="orders",
        flow_control={"key": "fk-msg", "rate": 5, "parallelism": 2},
        timeout="30s",
    )
    msg = client.message.get(res.message_id)
    assert msg.message_id == res.message_id
    assert msg.url == f"{slow.url}/later"
    assert json.loads(msg.body) == {"a": 1}
    assert msg.headers["X-Trace"] == ["t1"]
    assert msg.headers["Content-Type"] == ["application/json"]
    assert msg.max_retries == 2
    assert msg.retry_delay_expression == "1000 * (1 + retried)"
    assert msg.callback == f"{slow.url}/cb"
    assert msg.callback_headers == {"Cb-Tag": ["c"]}
    assert msg.failure_callback == f"{slow.url}/fcb"
    assert msg.label == "orders"
    assert msg.flow_control is not None
    assert (msg.flow_control.key, msg.flow_control.rate, msg.flow_control.parallelism) == (
        "fk-msg", 5, 2,
    )
    assert msg.flow_control.period == 1
    assert msg.not_before > msg.created_at
    client.message.cancel(res.message_id)
    with pytest.raises(QStashError, match="404"):
        client.message.get(res.message_id)

    ids = [
        client.message.publish(url=f"{slow.url}/m{i}", body=str(i), delay=3600).message_id
        for i in range(3)
    ]
    assert client.message.cancel_many(ids[:2]) == 2
    assert client.message.get(ids[2]).message_id == ids[2]
    client.message.cancel(ids[2])
    states = {
        e.state for e in client.log.list(filter={"message_id": ids[0]}).logs
    }
    assert {LogState.CREATED, LogState.CANCEL_REQUESTED, LogState.CANCELED} <= states
    assert slow.requests == []


def test_cancel_all(qstash_server_factory):
    server = qstash_server_factory(accept_only=True)
    client = server.client()
    for i in range(4):
        client.message.publish(url=f"http://127.0.0.1:9/{i}", body="x")
    assert client.message.cancel_all() == 4
    assert client.message.cancel_all() == 0


def test_deduplication_answers_202_with_original_id(qstash_server, endpoint):
    client = qstash_server.client()
    dedup_id = _name("dedup")
    first = client.message.publish(url=endpoint.url, body="a", deduplication_id=dedup_id)
    second = client.message.publish(url=endpoint.url, body="b", deduplication_id=dedup_id)
    assert not first.deduplicated
    assert second.deduplicated and second.message_id == first.message_id
    raw = httpx.post(
        f"{qstash_server.url}/v2/publish/{endpoint.url}",
        content=b"c",
        headers={**qstash_server.headers, "Upstash-Deduplication-Id": dedup_id},
    )
    assert raw.status_code == 202
    assert raw.json() == {"messageId": first.message_id, "deduplicated": True}
    body = _name("content")
    c1 = client.message.publish(url=endpoint.url, body=body, content_based_deduplication=True)
    c2 = client.message.publish(url=endpoint.url, body=body, content_based_deduplication=True)
    c3 = client.message.publish(
        url=endpoint.url, body=body + "!", content_based_deduplication=True
    )
    assert c2.deduplicated and c2.message_id == c1.message_id
    assert not c3.deduplicated
    endpoint.wait_for(3)
    bad = httpx.post(
        f"{qstash_server.url}/v2/publish/{endpoint.url}",
        content=b"c",
        headers={**qstash_server.headers, "Upstash-Deduplication-Id": "a:b"},
    )
    assert bad.status_code == 400 and "cannot contain ':'" in bad.json()["error"]


def test_url_group_namespace_and_fan_out(qstash_server, endpoint_factory):
    client = qstash_server.client()
    eps = [endpoint_factory() for _ in range(3)]
    group = _name("grp")
    client.url_group.upsert_endpoints(
        group, [{"url": eps[0].url, "name": "a"}, {"url": eps[1].url}, {"url": eps[2].url}]
    )
    got = client.url_group.get(group)
    assert got.name == group
    assert [e.url for e in got.endpoints] == [e.url for e in eps]
    assert group in [g.name for g in client.url_group.list()]
    res = client.message.publish(url_group=group, body="fan", headers={"X-A": "1"})
    assert isinstance(res, list) and len(res) == 3
    assert len({r.message_id for r in res}) == 3
    for ep, r in zip(eps, res, strict=True):
        [req] = ep.wait_for(1)
        assert r.url == ep.url
        assert req.headers["upstash-topic-name"] == group
        assert req.headers["upstash-message-id"] == r.message_id
        assert req.headers["x-a"] == "1"
    client.url_group.remove_endpoints(group, [{"name": "a"}, {"url": eps[1].url}])
    assert [e.url for e in client.url_group.get(group).endpoints] == [eps[2].url]
    client.url_group.delete(group)
    with pytest.raises(QStashError, match="404"):
        client.url_group.get(group)


def test_enqueue_and_batch(qstash_server, endpoint_factory):
    client = qstash_server.client()
    ep = endpoint_factory()
    grp_eps = [endpoint_factory(), endpoint_factory()]
    group = _name("bgrp")
    client.url_group.upsert_endpoints(group, [{"url": e.url} for e in grp_eps])
    queue = _name("q")
    enq = client.message.enqueue_json(queue=queue, url=f"{ep.url}/e", body={"k": "v"})
    assert enq.message_id.startswith("msg_")
    replies = client.message.batch_json(
        [
            {"url": f"{ep.url}/b1", "body": {"i": 1}},
            {"url_group": group, "body": {"i": 2}},
            {"queue": queue, "url": f"{ep.url}/b3", "body": {"i": 3}},
        ]
    )
    assert len(replies) == 3
    assert isinstance(replies[1], list) and len(replies[1]) == 2
    reqs = ep.wait_for(3)
    assert sorted(r.path for r in reqs) == ["/b1", "/b3", "/e"]
    queued = [r.path for r in reqs if r.path in ("/e", "/b3")]
    assert queued == ["/e", "/b3"]
    for e in grp_eps:
        [req] = e.wait_for(1)
        assert json.loads(req.body) == {"i": 2}
    raw = client.message.batch(
        [{"url": f"{ep.url}/raw", "body": "plain", "content_type": "text/plain"}]
    )
    assert raw[0].message_id.startswith("msg_")
    # per-item errors do not stop the other items
    mixed = httpx.post(
        f"{qstash_server.url}/v2/batch",
        json=[{"destination": "no-such-group"}, {"destination": f"{ep.url}/ok", "body": "x"}],
        headers=qstash_server.headers,
    )
    assert mixed.status_code == 200
    assert "error" in mixed.json()[0] and "messageId" in mixed.json()[1]


def test_queue_namespace(qstash_server):
    client = qstash_server.client()
    name = _name("queue")
    client.queue.upsert(name, parallelism=2)
    q = client.queue.get(name)
    assert (q.name, q.parallelism, q.paused, q.lag) == (name, 2, False, 0)
    client.queue.pause(name)
    assert client.queue.get(name).paused
    client.queue.resume(name)
    assert not client.queue.get(name).paused
    client.queue.upsert(name, parallelism=1, paused=True)
    q = client.queue.get(name)
    assert (q.parallelism, q.paused) == (1, True)
    client.message.enqueue(queue=name, url="http://127.0.0.1:9/x", body="held")
    assert client.queue.get(name).lag == 1
    assert name in [x.name for x in client.queue.list()]
    client.queue.delete(name)
    with pytest.raises(QStashError, match="404"):
        client.queue.get(name)


def test_schedule_namespace(qstash_server, endpoint):
    client = qstash_server.client()
    sid = client.schedule.create_json(
        destination=f"{endpoint.url}/tick",
        cron="CRON_TZ=America/New_York 0 4 * * *",
        body={"s": 1},
        headers={"X-S": "1"},
        retries=1,
        label="nightly",
    )
    assert sid.startswith("scd_")
    s = client.schedule.get(sid)
    assert s.cron == "CRON_TZ=America/New_York 0 4 * * *"
    assert s.destination == f"{endpoint.url}/tick"
    assert s.retries == 1 and not s.paused
    assert s.next_schedule_time > 0
    assert s.headers["X-S"] == ["1"]
    client.schedule.pause(sid)
    assert client.schedule.get(sid).paused
    client.schedule.resume(sid)
    assert not client.schedule.get(sid).paused
    # documented form: POST .../pause
    r = httpx.post(f"{qstash_server.url}/v2/schedules/{sid}/pause", headers=qstash_server.headers)
    assert r.status_code == 200 and client.schedule.get(sid).paused
    custom = client.schedule.create(
        destination=endpoint.url, cron="*/5 * * * *", body="b", schedule_id=_name("mysched")
    )
    assert custom in [x.schedule_id for x in client.schedule.list()]
    # fire once now (test-only trigger; the cron loop calls the same code)
    fired = httpx.post(
        f"{qstash_server.url}/__admin/schedules/{custom}/trigger", headers=qstash_server.headers
    )
    assert fired.status_code == 200
    [req] = endpoint.wait_for(1)
    assert req.headers["upstash-schedule-id"] == custom
    assert req.body == b"b"
    client.schedule.delete(sid)
    client.schedule.delete(custom)
    with pytest.raises(QStashError, match="404"):
        client.schedule.get(sid)
    with pytest.raises(QStashError, match="400"):
        client.schedule.create(destination=endpoint.url, cron="not a cron", body="")


def test_dlq_namespace(qstash_server, endpoint_factory):
    client = qstash_server.client()
    failing = endpoint_factory(lambda _r: Reply(500, b"broken", {"X-Why": "down"}))
    label = _name("lbl")
    ids = [
        client.message.publish(url=f"{failing.url}/{i}", body=f"d{i}", retries=0, label=label)
        .message_id
        for i in range(3)
    ]

    def listed():
        r = client.dlq.list(filter={"label": label})
        return r.messages if len(r.messages) == 3 else None

    messages = wait_until(listed, what=f"3 DLQ messages labelled {label}")
    assert {m.message_id for m in messages} == set(ids)
    first = client.dlq.get(messages[0].dlq_id)
    assert first.response_status == 500
    assert first.response_body == "broken"
    assert first.response_headers["x-why"] == ["down"]
    page = client.dlq.list(count=1, filter={"label": label})
    assert len(page.messages) == 1 and page.cursor
    page2 = client.dlq.list(cursor=page.cursor, count=5, filter={"label": label})
    assert page.messages[0].dlq_id not in [m.dlq_id for m in page2.messages]
    assert len(page2.messages) == 2
    assert client.dlq.list(filter={"url": f"{failing.url}/1"}).messages[0].message_id == ids[1]
    assert client.dlq.list(filter={"response_status": 404, "label": label}).messages == []
    client.dlq.delete(messages[0].dlq_id)
    with pytest.raises(QStashError, match="404"):
        client.dlq.get(messages[0].dlq_id)
    # retry (raw HTTP: qstash-py has no DLQ retry) re-publishes a copy
    failing.responder = lambda _r: Reply(200, b"fine")
    retry = httpx.post(
        f"{qstash_server.url}/v2/dlq/retry/{messages[1].dlq_id}", headers=qstash_server.headers
    )
    assert retry.status_code == 201 and retry.json()["messageId"].startswith("msg_")
    wait_until(lambda: any(r.body == messages[1].body.encode() and r.headers.get(
        "upstash-message-id") == retry.json()["messageId"] for r in failing.requests),
        what="the retried DLQ message delivered")
    assert client.dlq.delete_many([messages[2].dlq_id]) == 1
    assert client.dlq.list(filter={"label": label}).messages == []
    # bulk retry by filter
    failing.responder = lambda _r: Reply(500, b"broken")
    client.message.publish(url=f"{failing.url}/bulk", body="b", retries=0, label=label)
    wait_until(lambda: client.dlq.list(filter={"label": label}).messages, what="a DLQ message")
    failing.responder = lambda _r: Reply(200, b"fine")
    bulk = httpx.post(f"{qstash_server.url}/v2/dlq/retry", params={"label": label},
                      headers=qstash_server.headers)
    assert bulk.status_code == 201 and len(bulk.json()["responses"]) == 1
    wait_until(lambda: any(r.headers.get("upstash-message-id") == bulk.json()["responses"][0][
        "messageId"] for r in failing.requests), what="the bulk-retried message delivered")
    assert client.dlq.list(filter={"label": label}).messages == []


def test_log_namespace(qstash_server, endpoint):
    client = qstash_server.client()
    label = _name("log")
    mid = client.message.publish(url=endpoint.url, body="logme", label=label).message_id
    endpoint.wait_for(1)

    def delivered():
        logs = client.log.list(filter={"message_id": mid}).logs
        return logs if any(e.state == LogState.DELIVERED for e in logs) else None

    logs = wait_until(delivered, what=f"a DELIVERED log for {mid}")
    assert [e.state for e in logs][::-1][:3] == [
        LogState.CREATED, LogState.ACTIVE, LogState.DELIVERED,
    ]
    assert base64.b64decode(logs[0].body_base64) == b"logme"
    assert client.log.list(filter={"label": label, "state": LogState.DELIVERED}).logs[0].message_id == mid
    page = client.log.list(count=1, filter={"message_id": mid})
    assert len(page.logs) == 1 and page.cursor
    rest = client.log.list(cursor=page.cursor, filter={"message_id": mid})
    assert len(rest.logs) == len(logs) - 1
    spec = httpx.get(f"{qstash_server.url}/v2/logs", params={"messageId": mid},
                     headers=qstash_server.headers)
    assert {e["state"] for e in spec.json()["logs"]} >= {"CREATED", "DELIVERED"}


def test_signing_key_namespace(qstash_server_factory, endpoint):
    server = qstash_server_factory()
    client = server.client()
    keys = client.signing_key.get()
    assert (keys.current, keys.next) == (server.current_signing_key, server.next_signing_key)
    rotated = client.signing_key.rotate()
    assert rotated.current == server.next_signing_key
    assert rotated.next.startswith("sig_") and rotated.next != keys.next
    client.message.publish(url=endpoint.url, body="after-rotate")
    [req] = endpoint.wait_for(1)
    from qstash import Receiver

    # signed with the new current key: old receivers verify through their "next" key
    Receiver(current_signing_key=keys.current, next_signing_key=keys.next).verify(
        signature=req.headers["upstash-signature"], body="after-rotate"
    )
    Receiver(current_signing_key=rotated.current, next_signing_key=rotated.next).verify(
        signature=req.headers["upstash-signature"], body="after-rotate"
    )


def test_flow_control_namespace(qstash_server, endpoint):
    client = qstash_server.client()
    key = _name("fc")
    client.message.publish(
        url=endpoint.url, body="f", flow_control={"key": key, "parallelism": 3, "rate": 10,
                                                  "period": "1h30m3s"}
    )
    endpoint.wait_for(1)
    info = client.flow_control.get(key)
    assert (info.key, info.parallelism_max, info.rate_max, info.rate_period) == (key, 3, 10, 5403)
    client.flow_control.pause(key)
    assert client.flow_control.get(key).is_paused
    client.flow_control.resume(key)
    assert not client.flow_control.get(key).is_paused
    client.flow_control.pin(key, {"parallelism": 1, "rate": 2, "period": 60})
    pinned = client.flow_control.get(key)
    assert pinned.is_pinned_parallelism and pinned.is_pinned_rate
    assert (pinned.parallelism_max, pinned.rate_max, pinned.rate_period) == (1, 2, 60)
    client.flow_control.unpin(key, {"parallelism": True, "rate": True})
    unpinned = client.flow_control.get(key)
    assert not unpinned.is_pinned_parallelism and not unpinned.is_pinned_rate
    client.flow_control.reset_rate(key)
    assert client.flow_control.get(key).rate_count == 0
    assert client.flow_control.get_global_parallelism().parallelism_max > 0
    listed = httpx.get(f"{qstash_server.url}/v2/flowControl", params={"search": key},
                       headers=qstash_server.headers).json()
    assert [k["flowControlKey"] for k in listed] == [key]
    with pytest.raises(QStashError, match="404"):
        client.flow_control.get(_name("missing"))


def test_redacted_fields_are_hidden_in_the_api_but_delivered(qstash_server, endpoint):
    import hashlib

    client = qstash_server.client()
    res = client.message.publish(
        url=endpoint.url, body="card=4111", delay="1h",
        headers={"Authorization": "Bearer s3cr3t", "X-Keep": "visible"},
        redact={"body": True, "header": ["Authorization"]},
    )
    msg = client.message.get(res.message_id)
    assert msg.body == "REDACTED:" + hashlib.sha256(b"card=4111").hexdigest()
    assert msg.headers["Authorization"][0].startswith("REDACTED:")
    assert msg.headers["X-Keep"] == ["visible"]
    logs = client.log.list(filter={"message_id": res.message_id}).logs
    assert all("s3cr3t" not in str(e.headers) and e.body_base64.startswith("REDACTED:")
               for e in logs)
    client.message.cancel(res.message_id)
    client.message.publish(url=endpoint.url, body="card=4111", headers={"Authorization": "x"},
                           redact={"body": True, "header": True})
    [req] = endpoint.wait_for(1)
    assert req.body == b"card=4111" and req.headers["authorization"] == "x"


def test_bulk_cancel_and_dlq_delete_by_query_filters(qstash_server, endpoint_factory):
    client = qstash_server.client()
    label = _name("bulk")
    other = _name("keep")
    ids = [client.message.publish(url=f"http://127.0.0.1:9/b{i}", body="x", delay="1h",
                                  label=label).message_id for i in range(3)]
    kept = client.message.publish(url="http://127.0.0.1:9/k", body="x", delay="1h",
                                  label=other).message_id
    r = httpx.delete(f"{qstash_server.url}/v2/messages", params={"label": label},
                     headers=qstash_server.headers)
    assert r.status_code == 200 and r.json() == {"cancelled": 3}
    for mid in ids:
        with pytest.raises(QStashError, match="404"):
            client.message.get(mid)
    by_id = httpx.delete(f"{qstash_server.url}/v2/messages", params={"messageIds": kept},
                         headers=qstash_server.headers)
    assert by_id.json() == {"cancelled": 1}
    failing = endpoint_factory(lambda _r: Reply(500, b"x"))
    for i in range(2):
        client.message.publish(url=f"{failing.url}/f{i}", body="x", retries=0, label=label)
    wait_until(lambda: len(client.dlq.list(filter={"label": label}).messages), until=lambda k: k == 2,
               what="2 DLQ messages")
    d = httpx.delete(f"{qstash_server.url}/v2/dlq", params={"label": label, "url": f"{failing.url}/f0"},
                     headers=qstash_server.headers)
    assert d.json() == {"deleted": 1}
    [left] = client.dlq.list(filter={"label": label}).messages
    assert left.url == f"{failing.url}/f1"
