"""Sending one delivery attempt over HTTP: the delivery engine's only network code.

Plain ``http://`` destinations (every local endpoint) go through a small HTTP/1.1 client on the
event loop: keep-alive connections per origin, reused one request at a time, each request written
in one ``write`` (TCP_NODELAY), responses parsed by ``httptools``. On loopback it sends many times
more requests per second than a general-purpose client. Anything else (``https://``, credentials
in the URL, ``HEAD``) goes through ``httpx``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools
import httpx

from qstash_server.engine.state import AttemptResult, OutgoingRequest

__all__ = ["MAX_RESPONSE_BODY", "Sender"]

MAX_RESPONSE_BODY = 1_000_000
_MAX_IDLE_PER_ORIGIN = 512
_CONNECT_TIMEOUT_S = 10.0
_OPENING_PER_ORIGIN = 4  # connections opened and not yet answered, per origin ...
_OPENING_HOLD_S = 0.05  # ... for at most this long each
_FRAMING = frozenset({"content-length", "transfer-encoding", "host", "connection"})


class _Closed(Exception):
    """The connection closed before a response began (a stale keep-alive connection)."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._future: asyncio.Future[AttemptResult] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self._started = False
        self._headers_done = False

    # ------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self._started = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(AttemptResult(status=None, error="connection failed: unexpected upgrade"))
        except httptools.HttpParserError as exc:
            self._fail(AttemptResult(status=None, error=f"invalid response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        future = self._future
        if future is None or future.done():
            return
        if not self._started:
            future.set_exception(_Closed())
        elif self._headers_done and "content-length" not in self._headers and \
                "chunked" not in self._headers.get("transfer-encoding", ""):
            self.on_message_complete()  # a body delimited by the end of the connection
        else:
            future.set_result(AttemptResult(status=None, error="connection failed: closed early"))

    # ------------------------------------------------------------ httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        if self._size < MAX_RESPONSE_BODY:
            self._body.append(body)
            self._size += len(body)

    def on_message_complete(self) -> None:
        future = self._future
        if future is None or future.done():
            return
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # an interim response: the real one follows
            self._headers, self._headers_done = {}, False
            return
        body = b"".join(self._body)[:MAX_RESPONSE_BODY]
        if not self._parser.should_keep_alive():
            self.close()
        future.set_result(AttemptResult(status=status, headers=self._headers, body=body))

    # ------------------------------------------------------------ requests
    def begin(self, data: bytes) -> asyncio.Future[AttemptResult]:
        assert self.transport is not None
        self._future = asyncio.get_running_loop().create_future()
        self._headers, self._body, self._size = {}, [], 0
        self._started = self._headers_done = False
        self.transport.write(data)
        return self._future

    def _fail(self, result: AttemptResult) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(result)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _encode_request(method: str, target: str, host: str, headers: dict[str, str],
                    body: bytes) -> bytes | None:
    """The request's bytes, or None when a header cannot be sent as is (httpx decides)."""
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    for name, value in headers.items():
        if name.lower() in _FRAMING:
            continue
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            return None
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"Content-Length: {len(body)}\r\n\r\n")
    return "".join(lines).encode("utf-8") + body


@dataclass(frozen=True, slots=True)
class _Route:
    """Where a destination URL goes: origin, request target and Host header, or httpx."""

    origin: tuple[str, int] = ("", 0)
    target: str = "/"
    host: str = ""
    via_httpx: bool = False
    invalid: AttemptResult | None = None


_VIA_HTTPX = _Route(via_httpx=True)
_MAX_ROUTES = 10_000


def _route(url: str) -> _Route:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.username or parts.password or not parts.hostname:
        return _VIA_HTTPX
    try:
        port = parts.port or 80
    except ValueError:
        return _Route(invalid=AttemptResult(status=None, error=f"invalid destination URL {url!r}"))
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return _Route((parts.hostname, port), target, parts.netloc)


class Sender:
    """The server's HTTP client for deliveries; one per server, used on its event loop."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._routes: dict[str, _Route] = {}
        self._opening: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._fallback: httpx.AsyncClient | None = None

    async def send(self, req: OutgoingRequest) -> AttemptResult:
        route = self._routes.get(req.url)
        if route is None:
            route = _route(req.url)
            if len(self._routes) > _MAX_ROUTES:
                self._routes.clear()
            self._routes[req.url] = route
        if route.invalid is not None:
            return route.invalid
        if route.via_httpx or req.method == "HEAD":
            return await self._send_httpx(req)
        origin = route.origin
        data = _encode_request(req.method, route.target, route.host, req.headers, req.body)
        if data is None:
            return await self._send_httpx(req)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + req.timeout_s
        for _ in range(2):  # once more on a fresh connection when a kept-alive one was stale
            conn = self._idle_connection(origin)
            if conn is not None:
                try:
                    result = await self._exchange(conn, data, deadline - loop.time())
                except _Closed:
                    continue
                self._release(origin, conn)
                return result
            return await self._send_on_new_connection(origin, data, req.timeout_s, deadline)
        return await self._send_on_new_connection(origin, data, req.timeout_s, deadline)

    async def _send_on_new_connection(self, origin: tuple[str, int], data: bytes,
                                      timeout_s: float, deadline: float) -> AttemptResult:
        """Open a connection (at most a few unproven ones per origin) and send on it.

        A connection counts as unproven until its first response (at most 50 ms): a burst of deliveries to a
        cold endpoint would otherwise open hundreds of connections at once, overflow its listen
        backlog (Python's http.server has 5), and leave requests in the kernel for tens of
        seconds. Waiting for a slot, a request takes a connection that became idle meanwhile.
        """
        loop = asyncio.get_running_loop()
        slots = self._opening.get(origin)
        if slots is None:
            slots = self._opening[origin] = asyncio.Semaphore(_OPENING_PER_ORIGIN)
        await slots.acquire()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                slots.release()

        # held until the first answer, or a moment for a slow endpoint (then the next may open)
        timer = loop.call_later(_OPENING_HOLD_S, release)
        try:
            conn = self._idle_connection(origin)
            if conn is None:
                try:
                    conn = await self._connect(origin, min(timeout_s, _CONNECT_TIMEOUT_S))
                except TimeoutError:
                    return AttemptResult(status=None, error="request timed out")
                except OSError as exc:
                    return AttemptResult(status=None,
                                         error=f"connection failed: {type(exc).__name__}")
            try:
                result = await self._exchange(conn, data, deadline - loop.time())
            except _Closed:
                return AttemptResult(status=None, error="connection failed: closed early")
        finally:
            timer.cancel()
            release()
        self._release(origin, conn)
        return result

    async def _exchange(self, conn: _Connection, data: bytes, timeout_s: float) -> AttemptResult:
        future = conn.begin(data)
        loop = asyncio.get_running_loop()

        def expire() -> None:
            if not future.done():
                future.set_result(AttemptResult(status=None, error="request timed out"))
                conn.close()

        timer = loop.call_later(max(0.0, timeout_s), expire)
        try:
            return await future
        except asyncio.CancelledError:
            conn.close()
            raise
        finally:
            timer.cancel()

    def _idle_connection(self, origin: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    def _release(self, origin: tuple[str, int], conn: _Connection) -> None:
        if conn.closed:
            return
        idle = self._idle.setdefault(origin, [])
        if len(idle) < _MAX_IDLE_PER_ORIGIN:
            idle.append(conn)
        else:
            conn.close()

    async def _connect(self, origin: tuple[str, int], timeout_s: float) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout_s):
            _transport, conn = await loop.create_connection(_Connection, origin[0], origin[1])
        return conn

    async def _send_httpx(self, req: OutgoingRequest) -> AttemptResult:
        if self._fallback is None:
            self._fallback = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
                follow_redirects=False,
            )
        try:
            response = await self._fallback.request(
                req.method,
                req.url,
                headers=req.headers,
                content=req.body if req.method not in ("GET", "HEAD") or req.body else None,
                timeout=httpx.Timeout(req.timeout_s, connect=min(req.timeout_s, _CONNECT_TIMEOUT_S)),
            )
        except httpx.TimeoutException:
            return AttemptResult(status=None, error="request timed out")
        except httpx.HTTPError as exc:
            return AttemptResult(status=None, error=f"connection failed: {type(exc).__name__}")
        return AttemptResult(
            status=response.status_code,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=response.content[:MAX_RESPONSE_BODY],
        )

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        if self._fallback is not None:
            await self._fallback.aclose()

    def idle_connections(self) -> int:
        """Kept-alive connections waiting for the next delivery (for tests)."""
        return sum(len(v) for v in self._idle.values())

