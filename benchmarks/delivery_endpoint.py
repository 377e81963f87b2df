"""An instant HTTP endpoint for the delivery benchmark (raw asyncio + httptools, uvloop).

Answers every request ``200`` with an empty body, after ``latency`` ms when given, and counts
what arrived: ``GET /__stats`` returns ``{"count", "first", "last", "inversions"}`` (wall-clock
seconds; an inversion is a request whose ``X-Seq: tag:n`` header is not above the previous one
of its tag) and ``POST /__reset`` clears them. Prints ``READY http://127.0.0.1:PORT``.

    python benchmarks/delivery_endpoint.py [--latency-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import cast

import httptools
import uvloop

__all__: list[str] = []

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.inversions = 0
        self.seen: dict[bytes, int] = {}

    def record(self, seq: bytes | None) -> None:
        now = time.time()
        if not self.count:
            self.first = now
        self.last = now
        self.count += 1
        if seq is not None:
            tag, _, n = seq.rpartition(b":")
            number = int(n)
            if number <= self.seen.get(tag, -1):
                self.inversions += 1
            self.seen[tag] = number

    def document(self) -> bytes:
        body = json.dumps({"count": self.count, "first": self.first, "last": self.last,
                           "inversions": self.inversions}).encode()
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
            len(body), body)


class Endpoint(asyncio.Protocol):
    def __init__(self, stats: Stats, latency_s: float) -> None:
        self.stats = stats
        self.latency_s = latency_s
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.seq: bytes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"x-seq":
            self.seq = value

    def on_message_complete(self) -> None:
        assert self.transport is not None
        url, seq, self.url, self.seq = self.url, self.seq, b"", None
        if url == b"/__stats":
            self.transport.write(self.stats.document())
            return
        if url == b"/__reset":
            self.stats.reset()
            self.transport.write(_OK)
            return
        self.stats.record(seq)
        if self.latency_s:
            asyncio.get_running_loop().call_later(self.latency_s, self._answer)
        else:
            self.transport.write(_OK)

    def _answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_OK)


async def serve(latency_ms: float) -> None:
    stats = Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Endpoint(stats, latency_ms / 1000), "127.0.0.1", 0,
                                      backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"READY http://127.0.0.1:{port}", flush=True)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.latency_ms))


if __name__ == "__main__":
    main()
