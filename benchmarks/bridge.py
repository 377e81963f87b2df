"""Benchmark: `migrator bridge` throughput and latency against ceilings measured in the same run.

Produces RECORDS small records (~100 B) and BIG records of BIG_SIZE bytes to fresh topics, then
runs each measurement in its own child process (so peak RSS is the measured thing's own):

    consume   a confluent-kafka consumer doing nothing with the records   (Kafka ceiling)
    qstash    the bridge -> local QStash server (accept-only) via /v2/batch
    http      the bridge's HTTP client (shared httpx.Client, same pool size) posting without
              Kafka to a trivial endpoint                                    (HTTP ceiling)
    direct    the bridge -> the same trivial endpoint, one POST per record
    instant   the bridge -> a /v2/batch stand-in that answers one id per item at once, storing
              nothing: the bridge's own rate when the far end costs nothing (the local
              server shares the two cores with the bridge and the broker; real QStash does not)
  rtt       the same stand-in answering each batch after --rtt-ms, like a QStash region far
              away, with the old default pipe (8 requests x 100 records) and today's (16 x 500)

and prints records/s, p50/p99 latency (poll -> accepted, from the bridge's samples), peak RSS,
and the ratios: qstash / consume (target >= 0.5, and >= 50,000 records/s), instant / consume,
direct / http (target >= 0.7), peak RSS with the whole backlog (target < 300 MB).
Record values are JSON with random text padding, so they compress like real data.

    python benchmarks/bridge.py                                  # 1M small + 100k x 10 KB
    python benchmarks/bridge.py --records 200000 --big 20000 --direct-records 20000

Connection details: KAFKA_BOOTSTRAP_SERVERS, else the running local stack's own state (as
`migrator dev env` reads it; see docs/dev-stack.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _bootstrap() -> str:
    from migrator.stack.state import stack_env

    servers = stack_env().get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        raise SystemExit("no Kafka: set KAFKA_BOOTSTRAP_SERVERS or start the stack "
                         "(`.venv/bin/migrator dev up`)")
    return servers


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


# -- setup ---------------------------------------------------------------------------------


def produce(bootstrap: str, topic: str, n: int, size: int, partitions: int) -> float:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[
        topic
    ].result(60)
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                  "compression.type": "lz4", "queue.buffering.max.kbytes": 1_048_576,
                  "message.max.bytes": 20_000_000})
    # the padding is random text taken at varying places of a 4 MB pool, so records compress
    # about as real ones do (a run of one letter compresses ~250:1 under lz4, and a consumer
    # then holds a whole decompressed fetch of hundreds of MB for an 8 MB prefetch)
    width = max(0, size - 60)
    pool = base64.b64encode(random.Random(7).randbytes(3 << 20)).decode()
    span = len(pool) - width
    t0 = time.monotonic()
    for i in range(n):
        start = (i * 7919) % span
        pad = pool[start:start + width]
        value = f'{{"id":{i},"amount":"{i % 1000}.25","pad":"{pad}"}}'.encode()
        while True:
            try:
                p.produce(topic, value=value, key=str(i % 1024).encode())
                break
            except BufferError:
                p.poll(0.05)
        if i % 10_000 == 0:
            p.poll(0)
    p.flush(300)
    return time.monotonic() - t0


def start_qstash_server() -> tuple[subprocess.Popen[str], str, str]:
    token = "bench_" + uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, "-m", "qstash_server", "--port", "0", "--token", token,
         "--accept-only"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        raise SystemExit(f"the local QStash server did not start: {line!r}")
    return proc, line.split(" ", 1)[1].strip(), token


ENDPOINT_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        event = await receive()
        more = event.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""


INSTANT_QSTASH_APP = """
import asyncio
import orjson

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path.startswith("/rtt"):  # /rtt<ms>/v2/batch: answer after <ms>, like a distant QStash
        await asyncio.sleep(int(path[4:].split("/", 1)[0]) / 1000)
    chunks, more = [], True
    while more:
        event = await receive()
        chunks.append(event.get("body", b""))
        more = event.get("more_body", False)
    raw = b"".join(chunks)
    items = orjson.loads(raw) if raw else []  # (the start-up probe is a bodiless GET)
    reply = orjson.dumps([{"messageId": f"msg_{i}"} for i in range(len(items))])
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(reply)).encode())]})
    await send({"type": "http.response.body", "body": reply})
"""


def start_endpoint(port: int, app: str = ENDPOINT_APP) -> subprocess.Popen[bytes]:
    """A trivial endpoint: uvicorn (uvloop + httptools) answering 200 ok, in its own process
    (or, with ``INSTANT_QSTASH_APP``, a /v2/batch stand-in answering one id per item at once)."""
    code = app + (
        f"\nimport uvicorn\nuvicorn.run(app, host='127.0.0.1', port={port}, log_level='error', "
        "access_log=False, loop='uvloop', http='httptools')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    import httpx

    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/")
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit("the trivial endpoint did not start")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- children ------------------------------------------------------------------------------


def child_consume(args: argparse.Namespace) -> dict[str, Any]:
    from confluent_kafka import Consumer

    from migrator.kafka.consumer_config import BRIDGE_CONSUMER_DEFAULTS

    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  **BRIDGE_CONSUMER_DEFAULTS})
    c.subscribe([args.topic])
    got = 0
    t0 = None
    cpu0 = _cpu_seconds()
    while got < args.n:
        msgs = c.consume(num_messages=5000, timeout=1.0)
        if msgs and t0 is None:
            t0 = time.monotonic()
            cpu0 = _cpu_seconds()
        got += sum(1 for m in msgs if m.error() is None)
    elapsed = time.monotonic() - (t0 or time.monotonic())
    cpu = _cpu_seconds() - cpu0
    c.close()
    return {"records": got, "seconds": elapsed, "rate": got / elapsed, "cpu": cpu,
            "rss_mb": _peak_rss_mb()}


def child_http(args: argparse.Namespace) -> dict[str, Any]:
    """The bridge's HTTP client without Kafka: `threads` workers share one httpx.Client."""
    import httpx

    body = b'{"id":1,"amount":"1.25","pad":"' + b"x" * 40 + b'"}'
    client = httpx.Client(limits=httpx.Limits(max_connections=args.threads + 2,
                                              max_keepalive_connections=args.threads + 2))
    per = args.n // args.threads
    lat: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        mine = []
        for _ in range(per):
            t = time.monotonic()
            client.post(args.url, content=body, headers={"Content-Type": "application/json"})
            mine.append(time.monotonic() - t)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(args.threads)]
    cpu0 = _cpu_seconds()
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    lat.sort()
    return {"records": per * args.threads, "seconds": elapsed, "rate": per * args.threads / elapsed,
            "cpu": _cpu_seconds() - cpu0, "p50_ms": lat[len(lat) // 2] * 1000,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1000, "rss_mb": _peak_rss_mb()}


def child_qstash_raw(args: argparse.Namespace) -> dict[str, Any]:
    """The QStash sink (same client, pool and batch size) posting without Kafka."""
    import httpx

    from connectors.qstash_sink import QStashSink
    from connectors.sink import Message, Record
    from migrator.bridge.config import PublishUrlDestination

    client = httpx.Client(limits=httpx.Limits(max_connections=args.threads + 2,
                                              max_keepalive_connections=args.threads + 2))
    dest = PublishUrlDestination(kind="publish-url", url="http://127.0.0.1:9/sink")
    sink = QStashSink(dest, base_url=args.url, token=args.token, client=client, name="raw")
    body = b'{"id":1,"amount":"1.25","pad":"' + b"x" * max(40, args.size - 60) + b'"}'
    batches = args.n // args.batch // args.threads
    lat: list[float] = []
    lock = threading.Lock()

    def work(w: int) -> None:
        mine = []
        for b in range(batches):
            msgs = [Message(Record("raw", w, b * args.batch + i, b"k", body, [], 1), body,
                            "application/json", f"raw-{args.group}-{w}-{b}-{i}")
                    for i in range(args.batch)]
            t = time.monotonic()
            results = sink.write_batch(msgs)
            assert all(r is None for r in results), results[:1]
            mine.append(time.monotonic() - t)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(args.threads)]
    cpu0 = _cpu_seconds()
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    n = batches * args.batch * args.threads
    lat.sort()
    return {"records": n, "seconds": elapsed, "rate": n / elapsed, "cpu": _cpu_seconds() - cpu0,
            "p50_ms": lat[len(lat) // 2] * 1000, "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
            "rss_mb": _peak_rss_mb()}


def child_bridge(args: argparse.Namespace) -> dict[str, Any]:
    from pydantic import SecretStr

    from migrator.bridge.config import BridgeConfig
    from migrator.bridge.runner import Bridge
    from migrator.config import KafkaConnection, QStashConnection

    if args.mode in ("qstash", "steady"):
        dest = {"kind": "publish-url", "url": "http://127.0.0.1:9/sink"}
        batch = {"count": args.batch, "bytes": 1_000_000, "linger_ms": 5}
    else:
        dest = {"kind": "direct-http", "url": args.url}
        batch = {"count": 50, "linger_ms": 2}
    cfg = BridgeConfig.model_validate({
        "group": args.group, "routes": [{"topic": args.topic, "destinations": [dest]}],
        "batch": batch, "in_flight": {"batches": args.threads, "records": args.in_flight},
    })
    bridge = Bridge(cfg, KafkaConnection(bootstrap_servers=args.bootstrap),
                    qstash=QStashConnection(url=args.url, token=SecretStr(args.token))
                    if args.mode != "direct" else None)
    marks: dict[str, float] = {}
    if args.mode == "steady":  # produce at a fixed rate while the bridge runs (no backlog)
        threading.Thread(target=_produce_at_rate, args=(args, bridge), daemon=True).start()

    def tick(b: Bridge) -> None:
        if "t0" not in marks and b.stats.received:
            marks["t0"] = time.monotonic()
            marks["cpu0"] = _cpu_seconds()
        if b.stats.delivered + b.stats.dead_lettered >= args.n and "t1" not in marks:
            marks["t1"] = time.monotonic()
            marks["cpu1"] = _cpu_seconds()
            b.stop()

    stats = bridge.run(on_tick=tick)
    lat = sorted(stats.latencies)
    elapsed = marks["t1"] - marks["t0"]
    return {"records": args.n, "seconds": elapsed, "rate": args.n / elapsed,
            "cpu": marks["cpu1"] - marks["cpu0"], "dead_lettered": stats.dead_lettered,
            "retries": stats.retries, "batches": stats.batches,
            "p50_ms": lat[len(lat) // 2] * 1000 if lat else None,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else None,
            "rss_mb": _peak_rss_mb()}


def _produce_at_rate(args: argparse.Namespace, bridge: Any) -> None:
    from confluent_kafka import Producer

    while not bridge.metrics.ready:
        time.sleep(0.05)
    p = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 1})
    value = b'{"id":1,"amount":"1.25","pad":"' + b"x" * 40 + b'"}'
    start = time.monotonic()
    for i in range(args.n):
        delay = start + i / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        p.produce(args.topic, value=value)
        p.poll(0)
    p.flush(30)


def run_child(mode: str, **kw: Any) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", mode]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def fmt(name: str, r: dict[str, Any]) -> str:
    lat = ""
    if r.get("p50_ms") is not None:
        lat = f"  p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms"
    return (f"{name:<34} {r['records']:>9,} rec {r['seconds']:7.2f} s {r['rate']:>10,.0f} rec/s"
            f"  cpu {r['cpu']:6.1f} s{lat}  peak RSS {r['rss_mb']:6.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000, help="small records (~100 B)")
    ap.add_argument("--big", type=int, default=100_000, help="big records (0 to skip)")
    ap.add_argument("--big-size", type=int, default=10_240)
    ap.add_argument("--direct-records", type=int, default=30_000,
                    help="records for the direct/HTTP pair (HTTP is ~1000x slower per record)")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--only-small", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=16, help="delivery pool size (the bridge default)")
    ap.add_argument("--batch", type=int, default=500, help="QStash batch count")
    ap.add_argument("--in-flight", type=int, default=20_000)
    ap.add_argument("--rtt-ms", type=int, default=50,
                    help="round trip of the distant-QStash runs (0 to skip them)")
    ap.add_argument("--rtt-records", type=int, default=200_000)
    ap.add_argument("--raw-qstash-records", type=int, default=100_000,
                    help="records for the raw /v2/batch ceiling")
    # child-only
    ap.add_argument("--child", help=argparse.SUPPRESS)
    for name in ("bootstrap", "topic", "group", "url", "token", "mode"):
        ap.add_argument(f"--{name}", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=100, help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, default=2000.0,
                    help="records/s for the steady-state latency run")
    ap.add_argument("--steady-seconds", type=float, default=10.0)
    args = ap.parse_args()

    if args.child:
        fn = {"consume": child_consume, "http": child_http,
              "qstash-raw": child_qstash_raw}.get(args.child, child_bridge)
        args.mode = args.child
        print(json.dumps(fn(args)))
        return

    bootstrap = _bootstrap()
    run = uuid.uuid4().hex[:8]
    common = {"bootstrap": bootstrap, "threads": args.threads, "batch": args.batch,
              "in_flight": args.in_flight}
    port = free_port()
    eproc = start_endpoint(port)
    ep_url = f"http://127.0.0.1:{port}/hook"
    instant_port = free_port()
    iproc = start_endpoint(instant_port, INSTANT_QSTASH_APP)
    instant_url = f"http://127.0.0.1:{instant_port}"
    results: dict[str, dict[str, Any]] = {}

    def with_qstash(mode: str, **kw: Any) -> dict[str, Any]:
        """Each QStash measurement gets a fresh accept-only server (it slows as it fills)."""
        qproc, qurl, qtoken = start_qstash_server()
        try:
            return run_child(mode, url=qurl, token=qtoken, **kw, **common)
        finally:
            qproc.terminate()
            qproc.wait(60)

    try:
        sets = [("small", args.records, 100)]
        if args.big:
            sets.append(("big", args.big, args.big_size))
        nd = min(args.direct_records, args.records)
        for label, n, size in sets:
            topic = f"bench-bridge-{label}-{run}"
            secs = produce(bootstrap, topic, n, size, args.partitions)
            print(f"produced {n:,} x {size} B to {topic} in {secs:.1f} s", flush=True)
            results[f"consume-{label}"] = run_child(
                "consume", topic=topic, group=f"bc-{label}-{run}", n=n, **common)
            print(fmt(f"ceiling: raw consume ({label})", results[f"consume-{label}"]), flush=True)
            if label == "small":
                results["http"] = run_child("http", n=nd, url=ep_url, **common)
                print(fmt("ceiling: raw HTTP POST", results["http"]), flush=True)
                results["direct"] = run_child("direct", topic=topic, group=f"bd-{run}", n=nd,
                                              url=ep_url, **{**common, "in_flight": 1000})
                print(fmt("bridge -> direct HTTP", results["direct"]), flush=True)
                steady = f"bench-bridge-steady-{run}"
                produce(bootstrap, steady, 0, 100, args.partitions)
                results["steady"] = with_qstash(
                    "steady", topic=steady, group=f"bs-{run}",
                    n=int(args.rate * args.steady_seconds), rate=args.rate)
                print(fmt(f"bridge -> QStash at {args.rate:,.0f} rec/s", results["steady"]),
                      flush=True)
            results[f"qstash-raw-{label}"] = with_qstash(
                "qstash-raw", group=f"raw-{label}-{run}", n=min(n, args.raw_qstash_records),
                size=size)
            print(fmt(f"ceiling: raw QStash /v2/batch ({label})", results[f"qstash-raw-{label}"]),
                  flush=True)
            results[f"qstash-{label}"] = with_qstash(
                "qstash", topic=topic, group=f"bq-{label}-{run}", n=n)
            print(fmt(f"bridge -> QStash batch ({label})", results[f"qstash-{label}"]), flush=True)
            results[f"instant-{label}"] = run_child(
                "qstash", topic=topic, group=f"bi-{label}-{run}", n=n, url=instant_url,
                token="instant", **common)
            print(fmt(f"bridge -> instant /v2/batch ({label})", results[f"instant-{label}"]),
                  flush=True)
            if label == "small" and args.rtt_ms:
                # a distant QStash: every batch answered after rtt_ms; throughput is then about
                # in_flight.batches x batch.count / round trip: the defaults before 2026-11-28
                # (8 x 100) and now (16 x 500)
                nr = min(n, args.rtt_records)
                for threads, count in ((8, 100), (16, 500)):
                    key = f"rtt-{threads}x{count}"
                    results[key] = run_child(
                        "qstash", topic=topic, group=f"br{threads}-{count}-{run}", n=nr,
                        url=f"{instant_url}/rtt{args.rtt_ms}", token="instant",
                        **{**common, "threads": threads, "batch": count})
                    print(fmt(f"bridge -> {args.rtt_ms} ms away, {threads} x {count}",
                              results[key]), flush=True)
    finally:
        for proc in (eproc, iproc):
            proc.terminate()
            proc.wait(30)

    q, c = results["qstash-small"], results["consume-small"]
    print()
    print(f"QStash batched / raw consume (small): {q['rate'] / c['rate']:.2f}  "
          f"(target >= 0.50; absolute {q['rate']:,.0f} rec/s, target >= 50,000)")
    qr = results["qstash-raw-small"]
    print(f"QStash batched / raw /v2/batch (small): {q['rate'] / qr['rate']:.2f}  "
          f"(how much of the local server's capacity the bridge uses)")
    qi = results["instant-small"]
    print(f"instant /v2/batch stand-in / raw consume (small): {qi['rate'] / c['rate']:.2f}  "
          f"(the bridge's own share: the same bridge when the far end costs nothing)")
    print(f"bridge CPU per record, QStash mode (small): {q['cpu'] / q['records'] * 1e6:.1f} us "
          f"(one core's worth: {q['records'] / max(q['cpu'], 1e-9):,.0f} rec/s)")
    if "qstash-big" in results:
        qb, cb = results["qstash-big"], results["consume-big"]
        print(f"QStash batched / raw consume (big):   {qb['rate'] / cb['rate']:.2f}")
    d, h = results["direct"], results["http"]
    print(f"direct / raw HTTP:                    {d['rate'] / h['rate']:.2f}  (target >= 0.70)")
    st = results["steady"]
    print(f"steady state at {args.rate:,.0f} rec/s (no backlog): p50 {st['p50_ms']:.1f} ms, "
          f"p99 {st['p99_ms']:.1f} ms poll -> accepted by QStash")
    print(f"bridge peak RSS with {args.records:,}-record backlog: {q['rss_mb']:.0f} MB "
          f"(target < 300 MB)")
    print(json.dumps({"scale": {"records": args.records, "big": args.big,
                                "big_size": args.big_size, "direct_records": nd},
                      "results": results}))


if __name__ == "__main__":
    main()
