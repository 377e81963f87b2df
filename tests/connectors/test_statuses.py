"""A refused credential is its own error type: the bridge stops on it by type, not by text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.destinations import DirectHttpDestination, PublishUrlDestination
from connectors.http_sink import HttpSink
from connectors.qstash_sink import QStashSink
from connectors.sink import Message, Record
from connectors.statuses import CredentialsRefusedError, error_for_status
from migrator.errors import PermanentDeliveryError
from tests.fixtures.endpoint import RecordingEndpoint, Reply


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def message(offset: int, body: bytes = b'{"ok":true}') -> Message:
    rec = Record("orders", 0, offset, None, body, [], None)
    return Message(rec, body, "application/json", f"kb-x-orders-0-{offset}")


@pytest.mark.qstash
def test_qstash_refusing_the_token_is_a_credentials_error_for_batches_and_single_publishes(
    qstash_server: Any, endpoint: RecordingEndpoint, client: httpx.Client
) -> None:
    dest = PublishUrlDestination.model_validate({"kind": "publish-url", "url": endpoint.url})
    sink = QStashSink(dest, base_url=qstash_server.url, token="not-the-t0ken", client=client,
                      name="orders/0")
    # the first goes in a /v2/batch request, the second (not UTF-8) through /v2/publish
    results = sink.write_batch([message(1), message(2, b"\xff\xfe")])
    for result in results:
        assert isinstance(result, CredentialsRefusedError), result
        assert result.status == 401
        assert "orders/0" in str(result) and "qstash.token" in str(result)
        assert "not-the-t0ken" not in str(result)


def test_a_direct_endpoint_answering_401_is_an_ordinary_rejection(
    endpoint_factory: Any, client: httpx.Client
) -> None:
    ep = endpoint_factory(lambda _req: Reply(401, b"who are you"))
    dest = DirectHttpDestination.model_validate({"kind": "direct-http", "url": ep.url})
    sink = HttpSink(dest, client=client, name="direct")
    [result] = sink.write_batch([message(1)])
    assert isinstance(result, PermanentDeliveryError) and result.status == 401
    assert not isinstance(result, CredentialsRefusedError)  # dead-lettered, the bridge goes on


def test_error_for_status_never_says_credentials() -> None:
    for status in (401, 403):
        error = error_for_status(status, {}, b"")
        assert isinstance(error, PermanentDeliveryError)
        assert not isinstance(error, CredentialsRefusedError)
