"""HttpSink against real endpoints."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from connectors.http_sink import HttpSink
from connectors.sink import Message, Record
from migrator.bridge.config import DirectHttpDestination
from migrator.errors import PermanentDeliveryError, RetryableDeliveryError
from tests.fixtures.endpoint import Reply


def message(offset: int) -> Message:
    rec = Record("t", 0, offset, b"k", b"body%d" % offset, [("h", b"v")], 5)
    return Message(rec, rec.value or b"", "text/plain", f"kb-0123456789-t-0-{offset}")


@pytest.mark.parametrize("ordered", [True, False])
def test_results_per_message_and_stop_on_failure(endpoint_factory: Any, ordered: bool) -> None:
    ep = endpoint_factory(lambda req: Reply(503) if req.body == b"body1" else
                          Reply(404) if req.body == b"body3" else Reply())
    with httpx.Client() as client:
        dest = DirectHttpDestination(kind="direct-http", url=ep.url + "/x", headers={"A": "b"})
        sink = HttpSink(dest, client=client, name="t", stop_on_failure=ordered)
        results = sink.write_batch([message(i) for i in range(5)])
    assert results[0] is None
    assert isinstance(results[1], RetryableDeliveryError)
    if ordered:
        assert [r.body for r in ep.requests] == [b"body0", b"body1"]
        assert all(isinstance(r, RetryableDeliveryError) for r in results[2:])
    else:
        assert isinstance(results[3], PermanentDeliveryError) and results[3].status == 404
        assert results[2] is None and results[4] is None
    h = ep.requests[0].headers
    assert h["idempotency-key"] == "kb-0123456789-t-0-0" and h["a"] == "b"
    assert h["kafka-key"] == "k" and h["kafka-header-h"] == "v" and h["kafka-offset"] == "0"


def test_timeouts_and_connection_errors_are_retryable(endpoint_factory: Any) -> None:
    def slow(_req: Any) -> Reply:
        time.sleep(0.5)
        return Reply()

    ep = endpoint_factory(slow)
    with httpx.Client() as client:
        dest = DirectHttpDestination(kind="direct-http", url=ep.url, timeout=0.1)
        assert isinstance(HttpSink(dest, client=client, name="t").write_batch([message(0)])[0],
                          RetryableDeliveryError)
        slow_result = HttpSink(dest, client=client, name="t").write_batch([message(0)])[0]
        assert isinstance(slow_result, RetryableDeliveryError) and not slow_result.outage
        gone = DirectHttpDestination(kind="direct-http", url="http://127.0.0.1:9/")
        result = HttpSink(gone, client=client, name="t").write_batch([message(0)])[0]
        assert isinstance(result, RetryableDeliveryError) and result.outage  # nobody listens


def test_statuses_named_by_the_destination_override_the_defaults(endpoint_factory: Any) -> None:
    replies = {b"body0": Reply(409), b"body1": Reply(404, headers={"Retry-After": "3"}),
               b"body2": Reply(503), b"body3": Reply(404), b"body4": Reply(400)}
    ep = endpoint_factory(lambda req: replies[req.body])
    with httpx.Client() as client:
        dest = DirectHttpDestination(kind="direct-http", url=ep.url, success_on=(409,),
                                     retry_on=(404,), fail_on=(503,))
        results = HttpSink(dest, client=client, name="t").write_batch([message(i) for i in range(5)])
    assert results[0] is None  # 409 counts as delivered
    assert isinstance(results[1], RetryableDeliveryError) and results[1].status == 404
    assert results[1].retry_after == 3.0  # the server's wait still counts
    assert isinstance(results[2], PermanentDeliveryError) and results[2].status == 503
    assert isinstance(results[3], RetryableDeliveryError)
    assert isinstance(results[4], PermanentDeliveryError) and results[4].status == 400  # default


def test_a_status_in_two_lists_is_refused() -> None:
    with pytest.raises(ValueError, match="status 404 is in both retry_on and fail_on"):
        DirectHttpDestination(kind="direct-http", url="http://127.0.0.1:9/", retry_on=(404,),
                              fail_on=(404,))
    with pytest.raises(ValueError, match="less than or equal to 599"):
        DirectHttpDestination(kind="direct-http", url="http://127.0.0.1:9/", retry_on=(704,))


def test_credentials_in_the_endpoint_url_never_reach_errors(endpoint_factory: Any) -> None:
    """A direct URL may carry a password or a token; the errors (hence logs and dead-letter
    headers) name the endpoint without them."""
    ep = endpoint_factory(lambda req: Reply(400, b"bad"))
    secret_url = ep.url.replace("http://", "http://svc:pa55word@") + "/x?token=t0ps3cret&v=1"
    with httpx.Client() as client:
        dest = DirectHttpDestination(kind="direct-http", url=secret_url)
        rejected = HttpSink(dest, client=client, name="t").write_batch([message(0)])[0]
        gone = DirectHttpDestination(kind="direct-http", url="http://t0ps3cret@127.0.0.1:9/?k=pa55word")
        unreachable = HttpSink(gone, client=client, name="t").write_batch([message(0)])[0]
    assert ep.requests and ep.requests[0].path == "/x?token=t0ps3cret&v=1"  # sent as given
    for error in (rejected, unreachable):
        text = str(error)
        assert "pa55word" not in text and "t0ps3cret" not in text, text
    assert "http://svc:***@127.0.0.1:" in str(rejected) and "/x?token=***&v=***" in str(rejected)
    assert "http://***@127.0.0.1:9/?k=***" in str(unreachable)
