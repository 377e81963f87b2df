"""Delivery through the real server to real endpoints, verified with the official Receiver."""

from __future__ import annotations

import json

import pytest
from qstash import Receiver
from qstash.errors import SignatureError

from tests.fixtures.endpoint import Reply

pytestmark = pytest.mark.qstash


def test_publish_delivers_signed_request_with_forwarded_headers(qstash_server, endpoint):
    client = qstash_server.client()
    res = client.message.publish(
        url=f"{endpoint.url}/hook?x=1",
        body="hello world",
        content_type="text/plain",
        headers={"X-Kafka-Key": "k1"},
        method="PUT",
    )
    [req] = endpoint.wait_for(1)
    assert req.method == "PUT"
    assert req.path == "/hook?x=1"
    assert req.body == b"hello world"
    assert req.headers["content-type"] == "text/plain"
    assert req.headers["x-kafka-key"] == "k1"
    assert req.headers["upstash-message-id"] == res.message_id
    assert req.headers["upstash-retried"] == "0"
    for current, nxt in (
        (qstash_server.current_signing_key, qstash_server.next_signing_key),
        ("sig_wrong_current_key_xxxxxxxxxxxx", qstash_server.current_signing_key),
    ):
        Receiver(current_signing_key=current, next_signing_key=nxt).verify(
            signature=req.headers["upstash-signature"],
            body=req.body.decode(),
            url=f"{endpoint.url}/hook?x=1",
        )
    with pytest.raises(SignatureError):
        qstash_server.receiver().verify(
            signature=req.headers["upstash-signature"], body="tampered"
        )


def test_retry_then_success_increments_upstash_retried(qstash_server, endpoint_factory):
    answers = iter([Reply(500, b"boom"), Reply(503, b"again"), Reply(200, b"ok")])
    ep = endpoint_factory(lambda _req: next(answers))
    client = qstash_server.client()
    client.message.publish_json(url=ep.url, body={"n": 1}, retries=3)
    reqs = ep.wait_for(3)
    assert [r.headers["upstash-retried"] for r in reqs] == ["0", "1", "2"]
    assert all(json.loads(r.body) == {"n": 1} for r in reqs)
