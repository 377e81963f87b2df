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

Delivery (``--delivery-only`` runs just this part), in delivering mode to an instant endpoint on
127.0.0.1 (``benchmarks/delivery_endpoint.py``, its own process, counting arrivals):
  * ceiling   - the server's own delivery HTTP client (``qstash_server`` ``Sender``) posting
                requests of the same shape to the same endpoint, as many in flight as the
                server allows, without the server;
  * unordered - signed deliveries/s of messages published with one Not-Before (all due at
                once), from that moment to the last arrival;
  * queues    - signed deliveries/s through many FIFO queues (parallelism 1; created paused,
                filled, resumed), to the instant endpoint and to one answering after a fixed
                latency, where the expectation is queues / latency; per-queue order is checked
                at the endpoint (inversions must be 0).
Targets: unordered >= 0.5 of the ceiling and >= 3,000 deliveries/s; queues ~ queues / latency.

    .venv/bin/python benchmarks/local_qstash.py [--seconds 5] [--connections 32]
    .venv/bin/python benchmarks/local_qstash.py --bridge-only   # just the batch figures
    .venv/bin/python benchmarks/local_qstash.py --delivery-only # just the delivery figures

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
    parser.add_argument("--delivery-only", action="store_true",
                        help="only the delivery figures and their ceiling")
    parser.add_argument("--deliveries", type=int, default=20_000,
                        help="messages per unordered delivery run")
    parser.add_argument("--queues", type=int, default=50, help="FIFO queues in the queue runs")
    parser.add_argument("--per-queue", type=int, default=400,
                        help="messages per queue (instant endpoint)")
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="endpoint latency of the second queue run")
    parser.add_argument("--constant-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.constant_server:
        run_constant_server()
        return
    if args.delivery_only:
        delivery_figures(args)
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
        server_cmd = [sys.executable, "-m", "qstash_server", "--port", "0",
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
    delivery_figures(args)


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


# ----------------------------------------------------------------------------- delivery
SIGNING = ("--current-signing-key", "sig_bench_current_key_0123456789",
           "--next-signing-key", "sig_bench_next_key_0123456789abc")
ENDPOINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "delivery_endpoint.py")


def endpoint_stats(url: str) -> dict[str, float]:
    import httpx

    stats: dict[str, float] = httpx.get(f"{url}/__stats", timeout=10).json()
    return stats


def wait_for_arrivals(url: str, count: int, timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        stats = endpoint_stats(url)
        if stats["count"] >= count:
            return stats
        if time.monotonic() > deadline:
            raise SystemExit(f"only {stats['count']} of {count} deliveries arrived in {timeout}s")
        time.sleep(0.05)


def ceiling_deliveries(endpoint: str, count: int, concurrency: int) -> tuple[float, float]:
    """Requests/s of the server's delivery client to the endpoint, without the server, and its
    CPU per request (us)."""
    from qstash_server.engine.sender import Sender
    from qstash_server.engine.signing import sign_delivery
    from qstash_server.engine.state import OutgoingRequest

    url = f"{endpoint}/in"
    body = b'{"order":12345,"amount":"19.99","currency":"EUR"}'
    headers = {"Content-Type": "application/json", "Upstash-Message-Id": "msg_" + "0" * 26,
               "Upstash-Retried": "0", "User-Agent": "Upstash-QStash",
               "Upstash-Signature": sign_delivery("sig_bench_current_key_0123456789", url, body)}

    async def main() -> tuple[float, float]:
        sender = Sender()
        left = [count]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                result = await sender.send(OutgoingRequest(url, "POST", dict(headers), body, 30.0))
                if result.status != 200:
                    raise SystemExit(f"ceiling request failed: {result}")

        await asyncio.gather(*(worker() for _ in range(min(concurrency, 64))))  # warm-up
        left[0] = count
        t0, cpu0 = time.monotonic(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
        await sender.aclose()
        return count / elapsed, cpu * 1e6 / count

    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


def _post_batches(server: str, items: list[dict[str, object]], size: int = 100) -> None:
    import httpx

    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client:
        for i in range(0, len(items), size):
            r = client.post(f"{server}/v2/batch", json=items[i:i + size])
            r.raise_for_status()


def deliver_unordered(server: str, endpoint: str, count: int, pid: int) -> tuple[float, float]:
    """Deliveries/s of ``count`` messages that all fall due at one moment, and the server's CPU
    per delivery (us)."""
    import httpx

    httpx.post(f"{endpoint}/__reset", timeout=10).raise_for_status()
    due = int(time.time()) + 3 + count // 4_000
    body = '{"order":12345,"amount":"19.99","currency":"EUR"}'
    items: list[dict[str, object]] = [
        {"destination": f"{endpoint}/in", "body": body,
         "headers": {"Content-Type": "application/json", "Upstash-Not-Before": str(due)}}
        for _ in range(count)
    ]
    _post_batches(server, items)
    if time.time() > due:
        print("  (publishing took past the due time: the figure includes publishing)")
    time.sleep(max(0.0, due - time.time() - 0.2))
    cpu0 = _cpu_seconds(pid)
    stats = wait_for_arrivals(endpoint, count, timeout=120 + count / 100)
    cpu = _cpu_seconds(pid) - cpu0
    start = max(float(due), stats["first"])
    return count / (stats["last"] - start), cpu * 1e6 / count


def deliver_queues(server: str, endpoint: str, queues: int, per_queue: int) -> tuple[float, int]:
    """Deliveries/s through ``queues`` FIFO queues (parallelism 1) and the order inversions."""
    import httpx

    httpx.post(f"{endpoint}/__reset", timeout=10).raise_for_status()
    h = {"Authorization": f"Bearer {TOKEN}"}
    run = os.urandom(3).hex()
    names = [f"bench-{run}-{q}" for q in range(queues)]
    with httpx.Client(headers=h, timeout=60) as client:
        for name in names:
            client.post(f"{server}/v2/queues", json={"queueName": name, "parallelism": 1,
                                                     "paused": True}).raise_for_status()
        items: list[dict[str, object]] = [
            {"destination": f"{endpoint}/in", "queue": name, "body": f"{q}:{i}",
             "headers": {"Upstash-Forward-X-Seq": f"{q}:{i}"}}
            for i in range(per_queue) for q, name in enumerate(names)
        ]
        _post_batches(server, items)
        for name in names:
            client.post(f"{server}/v2/queues/{name}/resume").raise_for_status()
    # measured once every queue is running (resuming them one by one takes a while)
    t0, started = time.time(), int(endpoint_stats(endpoint)["count"])
    total = queues * per_queue
    if started > total * 0.8:
        print(f"  (only {total - started} deliveries left after resuming; use more per queue)")
    stats = wait_for_arrivals(endpoint, total, timeout=120 + total / 50)
    with httpx.Client(headers=h, timeout=60) as client:
        for name in names:
            client.delete(f"{server}/v2/queues/{name}")
    return (total - started) / (stats["last"] - t0), int(stats["inversions"])


def delivery_figures(args: argparse.Namespace) -> None:
    from qstash_server.settings import ServerSettings

    concurrency = ServerSettings().delivery_concurrency
    instant, instant_url = start([sys.executable, ENDPOINT])
    slow, slow_url = start([sys.executable, ENDPOINT, "--latency-ms", str(args.latency_ms)])
    try:
        ceiling, ceiling_us = ceiling_deliveries(instant_url, args.deliveries, concurrency)
        # the same client, one request at a time per queue, to the slow endpoint: what this
        # machine allows for queues / latency (scheduling delays included)
        slow_ceiling, _ = ceiling_deliveries(slow_url, args.queues * int(2000 / max(args.latency_ms, 1)),
                                             args.queues)
        with tempfile.TemporaryDirectory() as tmp:
            db = os.path.join(tmp, "deliver.db") if args.db == "file" else ":memory:"
            proc, url = start([sys.executable, "-m", "qstash_server", "--port", "0", "--db", db,
                               "--token", TOKEN, *SIGNING])
            try:
                unordered, cpu_us = deliver_unordered(url, instant_url, args.deliveries, proc.pid)
                queued, inv_fast = deliver_queues(url, instant_url, args.queues, args.per_queue)
                # about 5 s at the expected rate
                per_queue = max(1, int(5000 / max(args.latency_ms, 1)))
                slow_rate, inv_slow = deliver_queues(url, slow_url, args.queues, per_queue)
            finally:
                stop(proc)
    finally:
        stop(instant)
        stop(slow)
    expected = args.queues / (args.latency_ms / 1000)
    print(f"cpus={os.cpu_count()} db={args.db} deliveries={args.deliveries} "
          f"server delivery concurrency={concurrency}")
    print(f"ceiling   delivery client -> instant endpoint  {ceiling:10.0f} req/s  "
          f"client CPU {ceiling_us:.0f} us/request")
    print(f"unordered signed deliveries                  {unordered:10.0f} /s  ratio "
          f"{unordered / ceiling:.2f} of ceiling   target >= 0.5 "
          f"{'OK' if unordered >= 0.5 * ceiling else 'BELOW'}, >= 3000/s "
          f"{'OK' if unordered >= 3000 else 'BELOW'}   server CPU {cpu_us:.0f} us/delivery")
    print(f"queues    {args.queues} FIFO queues, instant endpoint   {queued:10.0f} /s  ratio "
          f"{queued / ceiling:.2f} of ceiling   order inversions {inv_fast}")
    print(f"queues    {args.queues} FIFO queues, {args.latency_ms:g} ms endpoint  {slow_rate:10.0f} /s  "
          f"ratio {slow_rate / expected:.2f} of queues/latency ({expected:.0f}/s), "
          f"{slow_rate / slow_ceiling:.2f} of the client alone ({slow_ceiling:.0f}/s)   "
          f"order inversions {inv_slow}")


if __name__ == "__main__":
    main()
