"""The delivery HTTP client against real servers on 127.0.0.1: keep-alive reuse, stale
connections, response framings, timeouts, refused connections."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from qstash_server.engine import sender as sender_module
from qstash_server.engine.sender import Sender
from qstash_server.engine.state import AttemptResult, OutgoingRequest

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def _run(handler: Handler, requests: list[OutgoingRequest] | Callable[[str], list[OutgoingRequest]],
         ) -> tuple[list[AttemptResult], int]:
    """Serve ``handler``; send the requests one after another; (results, connections opened)."""
    connections = 0

    async def main() -> tuple[list[AttemptResult], int]:
        async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            try:
                await handler(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(counted, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        sender = Sender()
        results = []
        for req in (requests(base) if callable(requests) else requests):
            results.append(await sender.send(req))
        await sender.aclose()
        server.close()
        return results, connections

    return asyncio.run(main())


def _post(base: str, path: str = "/in", body: bytes = b"payload", timeout: float = 5.0,
          ) -> OutgoingRequest:
    return OutgoingRequest(f"{base}{path}", "POST", {"Upstash-Message-Id": "msg_1"}, body, timeout)


def test_keep_alive_connection_is_reused_and_request_is_well_formed() -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await _read_request(reader))
            writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\nok")

    results, connections = _run(handler, lambda base: [_post(base, f"/p{i}?q=1") for i in range(5)])
    assert [(r.status, r.body, r.headers["x-a"]) for r in results] == [(201, b"ok", "1, 2")] * 5
    assert connections == 1
    head, body = seen[0]
    assert head.startswith(b"POST /p0?q=1 HTTP/1.1\r\nHost: 127.0.0.1:") and body == b"payload"
    assert b"Upstash-Message-Id: msg_1\r\n" in head and b"Content-Length: 7\r\n" in head


def test_a_connection_the_endpoint_closed_is_replaced_without_a_failed_attempt() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        # keep-alive promised, then closed before the next request (idle timeout, restart)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    results, connections = _run(handler, lambda base: [_post(base) for _ in range(3)])
    assert [r.status for r in results] == [200, 200, 200], results
    assert connections == 3


def test_chunked_and_close_delimited_bodies() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        await _read_request(reader)
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()

    results, _ = _run(chunked, lambda base: [_post(base), _post(base)])
    assert [(r.status, r.body) for r in results] == [(200, b"abcde"), (503, b"until the end")]


def test_timeout_and_refused_connection_are_failed_attempts() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    results, _ = _run(silent, lambda base: [_post(base, timeout=0.2),
                                             _post("http://127.0.0.1:9", timeout=2)])
    assert results[0].status is None and results[0].error == "request timed out"
    assert results[1].status is None and (results[1].error or "").startswith("connection failed")


def test_header_with_a_line_break_is_never_sent_raw() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await _read_request(reader)
        seen.append(head)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    def requests(base: str) -> list[OutgoingRequest]:
        return [OutgoingRequest(f"{base}/in", "POST", {"X-Evil": "a\r\nInjected: 1"}, b"", 5.0)]

    results, _ = _run(handler, requests)
    # handed to httpx, which refuses the header: a failed attempt, nothing injected
    assert results[0].status is None
    assert all(b"Injected" not in head for head in seen)


def test_a_burst_to_a_cold_endpoint_opens_few_connections_until_answers_come(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fifty deliveries at once must not open fifty connections to an endpoint that has not
    answered yet (its listen backlog overflows and requests wait in the kernel for seconds)."""
    monkeypatch.setattr(sender_module, "_OPENING_HOLD_S", 30.0)  # only answers free a slot
    opened_before_answers: list[int] = []

    async def main() -> list[AttemptResult]:
        connections = 0
        gate = asyncio.Event()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            try:
                while True:
                    await _read_request(reader)
                    await gate.wait()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        sender = Sender()
        sends = [asyncio.ensure_future(sender.send(_post(base))) for _ in range(50)]
        await asyncio.sleep(0.5)  # time for every send to open a connection if it could
        opened_before_answers.append(connections)
        gate.set()
        results = await asyncio.gather(*sends)
        await sender.aclose()
        server.close()
        return results

    results = asyncio.run(main())
    assert [r.status for r in results] == [200] * 50
    assert opened_before_answers == [4]
