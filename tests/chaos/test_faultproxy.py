"""The fault proxy itself, against a real HTTP endpoint on 127.0.0.1."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.faultproxy import HANG, PASS, RESET, FaultProxy, bandwidth, cut, latency


@pytest.fixture
def proxy(endpoint: RecordingEndpoint, fault_proxy_factory: type[FaultProxy]) -> FaultProxy:
    return fault_proxy_factory.to_url(endpoint.url)


def test_pass_forwards_requests_and_answers(proxy: FaultProxy, endpoint: RecordingEndpoint) -> None:
    with httpx.Client(timeout=5) as client:
        for i in range(3):  # one keep-alive connection, several requests
            r = client.post(proxy.url + "/p", content=f"body{i}".encode())
            assert (r.status_code, r.text) == (200, "ok")
    assert [r.body for r in endpoint.requests] == [b"body0", b"body1", b"body2"]
    assert proxy.accepted == 1


def test_latency_and_bandwidth_slow_every_exchange_down(proxy: FaultProxy) -> None:
    proxy.set(latency(0.3))
    started = time.monotonic()
    assert httpx.get(proxy.url, timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.6  # request and answer each held 0.3 s
    proxy.set(bandwidth(100_000))
    started = time.monotonic()
    assert httpx.post(proxy.url, content=b"x" * 60_000, timeout=10).status_code == 200
    assert time.monotonic() - started >= 0.5  # 60 kB at 100 kB/s


def test_reset_refuses_new_and_open_connections(
    proxy: FaultProxy, endpoint: RecordingEndpoint
) -> None:
    with httpx.Client(timeout=5) as client:
        assert client.get(proxy.url).status_code == 200  # a keep-alive connection is open
        proxy.set(RESET)
        with pytest.raises(httpx.TransportError):
            client.get(proxy.url)  # the open connection is reset on its next bytes
    with pytest.raises(httpx.TransportError):
        httpx.get(proxy.url, timeout=5)
    assert proxy.resets >= 2 and len(endpoint.requests) == 1
    proxy.set(PASS)
    assert httpx.get(proxy.url, timeout=5).status_code == 200


def test_hang_accepts_and_never_answers_until_the_client_times_out(
    proxy: FaultProxy, endpoint: RecordingEndpoint
) -> None:
    with httpx.Client(timeout=5) as client:
        assert client.get(proxy.url).status_code == 200
        proxy.set(HANG)
        with pytest.raises(httpx.ReadTimeout):
            client.get(proxy.url, timeout=0.5)  # the open connection goes silent
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(proxy.url, timeout=0.5)  # a new one is accepted, then nothing
    assert proxy.hung == 1 and len(endpoint.requests) == 1  # nothing reached upstream
    proxy.set(PASS)
    assert httpx.get(proxy.url, timeout=5).status_code == 200


def test_cut_delivers_the_request_then_stops_mid_answer(
    proxy: FaultProxy, endpoint: RecordingEndpoint
) -> None:
    proxy.set(cut(12))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(proxy.url, content=b"payload", timeout=0.5)
    assert endpoint.wait_for(1, 5)[0].body == b"payload"  # upstream got and answered it
    proxy.set(PASS)
    assert httpx.get(proxy.url, timeout=5).status_code == 200
