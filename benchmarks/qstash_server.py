"""Benchmark: the local QStash server's accept path on loopback.

Measures, in one run and on the same machine:
  * ceiling   - requests/s of the same ASGI stack (uvicorn + uvloop + httptools + Starlette)
                answering a constant publish reply without doing any work;
  * single    - single publishes/s (POST /v2/publish/{url}) in accept-only mode;
  * batched   - messages/s through POST /v2/batch (100 messages per request), accept-only;
  * bridge-shaped batches - messages/s through POST /v2/batch in accept-only mode with what
                the bridge sends: 500 items per request, each with its own
                Upstash-Deduplication-Id and five forwarded Kafka headers, 4 and 8 requests in
                flight, with the server's CPU per message (all its threads, from /proc, so the
                figure can be read apart from the client's share). Their ceiling is the same
                stack answering the same 500-item bodies with a constant (its msg/s and its CPU
                per message: reading the request costs that much before any work).
and prints each as a ratio of its ceiling. State is a SQLite file (WAL) by default, so every
accepted message is committed before it is acknowledged.

    .venv/bin/python benchmarks/qstash_server.py [--seconds 5] [--connections 32]
    .venv/bin/python benchmarks/qstash_server.py --bridge-only   # just the batch figures

Targets (2 cores): >= 3,000 single publishes/s, >= 30,000 batched messages/s, and for
bridge-shaped batches (4 in flight) >= 100,000 messages/s at <= 8 us of server CPU per message.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

TOKEN = "bench_token_0123456789abcdef"
DEST = "http://127.0.0.1:9/sink"


# ----------------------------------------------------------------------------- servers
def constant_app() -> object:
    """The same stack as the real server, answering a constant."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    reply = b'{"messageId":"msg_00000000000000000000000000000000"}'

    async def publish(request: Request) -> Response:
        await request.body()
        return Response(reply, media_type="application/json")

    return Starlette(routes=[
        Route("/v2/publish/{destination:path}", publish, methods=["POST"]),
        Route("/v2/batch", publish, methods=["POST"]),
    ])


def run_constant_server() -> None:
    import uvicorn

    config = uvicorn.Config(constant_app(), host="127.0.0.1", port=0, loop="uvloop",  # type: ignore[arg-type]
                            http="httptools", log_level="warning", access_log=False)
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        print(f"READY http://127.0.0.1:{port}", flush=True)
        await task

    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def start(cmd: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"server did not start: {cmd}")
    return proc, line.split()[1]


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


# ----------------------------------------------------------------------------- client
@dataclass
class Result:
    requests: int
    seconds: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


async def _connection(host: str, port: int, requests: Iterator[bytes], stop_at: float,
                      counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for request in requests:
            if time.monotonic() >= stop_at:
                break
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                    break
            if length:
                await reader.readexactly(length)
            counts[0 if 200 <= status < 300 else 1] += 1
    finally:
        writer.close()


def _request(host: str, port: str, path: str, body: bytes, content_type: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def load(url: str, path: str, body: bytes | list[bytes], content_type: str, seconds: float,
         connections: int) -> Result:
    """Closed-loop load: ``connections`` keep-alive connections, one request in flight each.

    ``body`` is one body sent again and again, or a list of bodies each sent once (in order,
    shared by the connections; the run ends early when they run out).
    """
    host, port = url.removeprefix("http://").split(":")
    if isinstance(body, bytes):
        requests: Iterator[bytes] = itertools.repeat(_request(host, port, path, body,
                                                              content_type))
        warm: Iterator[bytes] = requests
    else:
        requests = iter([_request(host, port, path, b, content_type) for b in body])
        warm = iter(())

    async def main() -> Result:
        counts = [0, 0]
        # warm-up
        await asyncio.gather(*(_connection(host, int(port), warm, time.monotonic() + 0.5,
                                           [0, 0]) for _ in range(connections)))
        t0 = time.monotonic()
        await asyncio.gather(*(_connection(host, int(port), requests, t0 + seconds, counts)
                               for _ in range(connections)))
        return Result(counts[0], time.monotonic() - t0, counts[1])

    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bridge_bodies(count: int, size: int) -> list[bytes]:
    """``count`` batch bodies shaped like the bridge's: unique dedup ids, Kafka headers."""
    body = '{"id":1,"amount":"1.25","pad":"' + "x" * 40 + '"}'
    out = []
    for r in range(count):
        out.append(json.dumps([
            {"destination": DEST, "body": body,
             "headers": {"Content-Type": "application/json",
                         "Upstash-Deduplication-Id": f"kb-0123456789-orders-{r % 4}-{r * size + i}",
                         "Upstash-Forward-Kafka-Topic": "orders",
                         "Upstash-Forward-Kafka-Partition": str(r % 4),
                         "Upstash-Forward-Kafka-Offset": str(r * size + i),
                         "Upstash-Forward-Kafka-Timestamp": str(1_700_000_000_000 + i),
                         "Upstash-Forward-Kafka-Key": str(i)}}
            for i in range(size)
        ], separators=(",", ":")).encode())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--db", default="file", choices=["file", "memory"])
    parser.add_argument("--bridge-batch-size", type=int, default=500)
    parser.add_argument("--bridge-items", type=int, default=400_000,
                        help="distinct bridge-shaped items prepared per concurrency level")
    parser.add_argument("--bridge-only", action="store_true",
                        help="only the bridge-shaped batch figures and their ceiling")
    parser.add_argument("--constant-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.constant_server:
        run_constant_server()
        return

    single_body = b'{"order":12345,"amount":"19.99","currency":"EUR"}'
    batch_body = json.dumps([
        {"destination": DEST, "body": single_body.decode(),
         "headers": {"Content-Type": "application/json"}}
        for _ in range(args.batch_size)
    ]).encode()
    publish_path = f"/v2/publish/{DEST}"

    nbodies = max(1, args.bridge_items // args.bridge_batch_size)
    bodies = bridge_bodies(nbodies, args.bridge_batch_size)
    ceiling_proc, ceiling_url = start([sys.executable, __file__, "--constant-server"])
    try:
        if not args.bridge_only:
            ceiling = load(ceiling_url, publish_path, single_body, "application/json",
                           args.seconds, args.connections)
            ceiling_batch = load(ceiling_url, "/v2/batch", batch_body, "application/json",
                                 args.seconds, args.connections)
        cpu0 = _cpu_seconds(ceiling_proc.pid)
        ceiling_bridge = load(ceiling_url, "/v2/batch", bodies, "application/json",
                              args.seconds, 4)
        ceiling_bridge_cpu = _cpu_seconds(ceiling_proc.pid) - cpu0
    finally:
        stop(ceiling_proc)
    ceiling_bridge_msgs = ceiling_bridge.rate * args.bridge_batch_size
    ceiling_bridge_us = (ceiling_bridge_cpu * 1e6
                         / max(1, ceiling_bridge.requests * args.bridge_batch_size))

    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "bench.db") if args.db == "file" else ":memory:"
        server_cmd = [sys.executable, "-m", "migrator.qstash_server", "--port", "0",
                      "--accept-only", "--db", db, "--token", TOKEN,
                      "--current-signing-key", "sig_bench_current_key_0123456789",
                      "--next-signing-key", "sig_bench_next_key_0123456789abc"]
        if not args.bridge_only:
            proc, url = start(server_cmd)
            try:
                single = load(url, publish_path, single_body, "application/json", args.seconds,
                              args.connections)
                batched = load(url, "/v2/batch", batch_body, "application/json", args.seconds,
                               args.connections)
            finally:
                stop(proc)
        bridge_shaped: list[tuple[int, Result, float]] = []
        for concurrency in (4, 8):
            db = os.path.join(tmp, f"bridge{concurrency}.db") if args.db == "file" else ":memory:"
            proc, url = start([*server_cmd[:7], db, *server_cmd[8:]])
            try:
                cpu0 = _cpu_seconds(proc.pid)
                res = load(url, "/v2/batch", bodies, "application/json", args.seconds,
                           concurrency)
                cpu = _cpu_seconds(proc.pid) - cpu0
            finally:
                stop(proc)
            bridge_shaped.append((concurrency, res, cpu))

    print(f"cpus={os.cpu_count()} seconds={args.seconds} connections={args.connections} "
          f"db={args.db} batch_size={args.batch_size}")
    if not args.bridge_only:
        print_publish_figures(args, ceiling, ceiling_batch, single, batched)
    print(f"ceiling  constant reply, bridge-shaped {args.bridge_batch_size}/request, 4 in flight "
          f"{ceiling_bridge_msgs:10.0f} msg/s  server CPU {ceiling_bridge_us:.1f} us/msg")
    for concurrency, res, cpu in bridge_shaped:
        items = res.requests * args.bridge_batch_size
        rate = items / res.seconds
        us = cpu * 1e6 / max(1, items)
        print(f"accept-only /v2/batch, bridge-shaped {args.bridge_batch_size}/request, "
              f"{concurrency} in flight {rate:10.0f} msg/s  ratio {rate / ceiling_bridge_msgs:.2f} "
              f"of ceiling   server CPU {us:.1f} us/msg  ratio {us / ceiling_bridge_us:.1f}x "
              f"the ceiling's   target >= 100000 msg/s "
              f"{'OK' if rate >= 100_000 else 'BELOW'}, <= 8 us/msg "
              f"{'OK' if us <= 8 else 'ABOVE'}  errors={res.errors}")


def print_publish_figures(args: argparse.Namespace, ceiling: Result, ceiling_batch: Result,
                          single: Result, batched: Result) -> None:
    batched_msgs = batched.rate * args.batch_size
    ceiling_batch_msgs = ceiling_batch.rate * args.batch_size
    print(f"ceiling  constant reply            {ceiling.rate:10.0f} req/s")
    print(f"ceiling  constant reply, batch body {ceiling_batch.rate:9.0f} req/s "
          f"(= {ceiling_batch_msgs:.0f} msg/s if it were a batch)")
    print(f"single   publishes                 {single.rate:10.0f} msg/s  "
          f"ratio {single.rate / ceiling.rate:.2f} of ceiling   target >= 3000  "
          f"{'OK' if single.rate >= 3000 else 'BELOW'}  errors={single.errors}")
    print(f"batched  messages ({args.batch_size}/request)     {batched_msgs:10.0f} msg/s  "
          f"ratio {batched.rate / ceiling_batch.rate:.2f} of ceiling   target >= 30000 "
          f"{'OK' if batched_msgs >= 30000 else 'BELOW'}  errors={batched.errors}")


if __name__ == "__main__":
    main()
