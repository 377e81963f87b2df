"""Benchmark: `migrator cutover verify` against reading the same log pages with the `qstash` SDK.

    python benchmarks/verify.py [--records 100000] [--sizes 20000,100000]

1. ``--records`` small records on a 4-partition topic; an old group committed at 0, prepared and
   switched (no bridge: the bridge group's committed offsets are then set to the end, as a
   bridge that delivered everything would leave them).
2. The same records published to a local QStash server of its own with ``/v2/batch`` exactly
   as the bridge stamps them (the hand-off's label, forwarded Kafka-Topic/Partition/Offset),
   delivered to a real endpoint (uvicorn, 200 ok).
3. In this process: ``verify_group`` (exhaustive: Kafka range, dead letters, every log page of
   the label by state, the DLQ), and the official SDK's ``client.log.list`` paging the same
   label with the same state filters (the same number of pages), 100 per page. Each is run
   twice: once timed, once under tracemalloc for its allocation peak (tracemalloc slows
   Python, so the timed run is without it).

``--sizes`` runs several sizes in one go (fresh topic and QStash server each) and prints the
memory at each: flat in the number of records when verify streams.

Connection details from KAFKA_BOOTSTRAP_SERVERS, else the running stack's own state (as `migrator dev env`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bridge import _bootstrap, free_port, produce, start_endpoint  # noqa: E402


def _measure(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    tracemalloc.start()
    t0 = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - t0
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak / 1e6, result


_STATES = ("FAILED", "CANCELED", "CANCEL_REQUESTED", "RETRY", "ERROR", "DELIVERED", "CREATED")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def run(n: int) -> dict[str, Any]:
    import httpx

    from migrator.bridge.config import BridgeConfig
    from migrator.config import KafkaConnection
    from migrator.cutover.coordinator import Coordinator
    from migrator.cutover.scope import cutover_label
    from migrator.cutover.verify import verify_group
    from tests.fixtures.qstash import start_qstash_server

    bootstrap = _bootstrap()
    server = start_qstash_server(backoff_scale=0.01)
    port = free_port()
    endpoint = start_endpoint(port)
    url = f"http://127.0.0.1:{port}/"
    topic = f"bench-verify-{uuid.uuid4().hex[:8]}"
    group = f"bench-old-{uuid.uuid4().hex[:8]}"
    try:
        produce(bootstrap, topic, n, 100, 4)
        cfg = BridgeConfig.model_validate({
            "kafka": {"bootstrap_servers": bootstrap}, "group": f"bench-mb-{uuid.uuid4().hex[:6]}",
            "cutover_topic": f"_bench_cutover_{uuid.uuid4().hex[:6]}",
            "qstash": {"url": server.url, "token": server.token},
            "routes": [{"topic": topic, "destinations": [
                {"kind": "publish-url", "url": url, "replaces_group": group}]}]})
        conn = KafkaConnection(bootstrap_servers=bootstrap)
        coord = Coordinator(cfg, conn, qstash=server.connection, poll=0.2)
        parts = [(topic, p) for p in range(4)]
        coord.admin.alter_group_offsets(group, dict.fromkeys(parts, 0))
        coord.prepare(group)
        state = coord.switch(group, watch=0.5, timeout=30, require_bridge=False)
        ends = coord.admin.list_offsets(parts, "latest")
        coord.admin.alter_group_offsets(state.bridge_group, ends)
        label = cutover_label(group, 1)

        def items() -> Any:
            for (_t, p), end in ends.items():
                for o in range(end):
                    yield {"destination": url, "body": f"v{p}-{o}", "headers": {
                        "Upstash-Label": label, "Upstash-Deduplication-Id": f"b-{p}-{o}",
                        "Upstash-Forward-Kafka-Topic": topic,
                        "Upstash-Forward-Kafka-Partition": str(p),
                        "Upstash-Forward-Kafka-Offset": str(o)}}

        t_publish = time.monotonic()
        with httpx.Client(timeout=120) as http:
            chunk: list[dict[str, Any]] = []
            last: list[str] = []
            for item in items():
                chunk.append(item)
                if len(chunk) == 500:
                    r = http.post(f"{server.url}/v2/batch", json=chunk, headers=server.headers)
                    r.raise_for_status()
                    last = [x["messageId"] for x in r.json()]
                    chunk = []
            if chunk:
                r = http.post(f"{server.url}/v2/batch", json=chunk, headers=server.headers)
                r.raise_for_status()
                last = [x["messageId"] for x in r.json()]
            deadline = time.monotonic() + 1800
            while True:  # every message delivered: as many DELIVERED entries as records
                delivered = 0
                cursor = None
                while True:
                    params: dict[str, Any] = {"label": label, "state": "DELIVERED",
                                              "count": 1000}
                    if cursor:
                        params["cursor"] = cursor
                    page = http.get(f"{server.url}/v2/logs", params=params,
                                    headers=server.headers).json()
                    delivered += len(page["logs"])
                    cursor = page.get("cursor")
                    if not cursor:
                        break
                if delivered >= n:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {delivered} of {n} delivered after 30 min "
                                     f"(last batch {last[:1]})")
                time.sleep(2.0)
        t_publish = time.monotonic() - t_publish
        state = coord.load(group)

        def run_verify() -> Any:
            return verify_group(cfg, state, parts, coord.admin, conn,
                                qstash=server.connection, max_records=n + 1)

        from qstash.log import LogState

        def run_sdk() -> int:
            client = server.client()
            pages = 0
            # qstash-py 3.4 prints each page: discarded, not kept in memory
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                for st in _STATES:
                    cursor = None
                    while True:
                        resp = client.log.list(cursor=cursor, count=100,
                                               filter={"label": label, "state": LogState(st)})
                        pages += 1
                        cursor = resp.cursor
                        if not cursor:
                            break
            return pages

        t_sdk, sdk_pages = _timed(run_sdk)
        t_ver, report = _timed(run_verify)
        _t, m_sdk, _p = _measure(run_sdk)
        _t, m_ver, _r = _measure(run_verify)
        totals = report.totals()
        coord.close()
        return {"records": n, "verdict": report.verdict, "delivered": totals["delivered"],
                "gaps": totals["gap"], "in_qstash": totals["in_qstash"],
                "publish_and_deliver_s": round(t_publish, 1),
                "verify_s": round(t_ver, 2), "verify_pages": report.log_pages,
                "verify_peak_mb": round(m_ver, 2), "sdk_s": round(t_sdk, 2),
                "sdk_pages": sdk_pages, "sdk_peak_mb": round(m_sdk, 2),
                "time_ratio": round(t_ver / t_sdk, 2),
                "memory_ratio": round(m_ver / max(m_sdk, 0.001), 2)}
    finally:
        endpoint.terminate()
        endpoint.wait(10)
        server.close()


def _print(r: dict[str, Any]) -> None:
    print(f"records {r['records']}: verify {r['verdict']}, delivered {r['delivered']}, "
          f"in QStash {r['in_qstash']}, gaps {r['gaps']} (published and delivered in "
          f"{r['publish_and_deliver_s']} s)")
    print(f"  verify: {r['verify_s']:.2f} s, {r['verify_pages']} log pages, peak "
          f"{r['verify_peak_mb']:.2f} MB (tracemalloc)")
    print(f"  SDK:    {r['sdk_s']:.2f} s, {r['sdk_pages']} log pages, peak "
          f"{r['sdk_peak_mb']:.2f} MB")
    print(f"  ratio time {r['time_ratio']:.2f}, memory {r['memory_ratio']:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--sizes", default="", help="comma-separated record counts, e.g. 20000,100000")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",") if x] or [args.records]
    results = []
    for n in sizes:
        results.append(run(n))
        _print(results[-1])
    if len(results) > 1:
        a, b = results[0], results[-1]
        print(f"memory at {a['records']} vs {b['records']} records: verify "
              f"{a['verify_peak_mb']:.2f} -> {b['verify_peak_mb']:.2f} MB "
              f"(x{b['verify_peak_mb'] / max(a['verify_peak_mb'], 0.001):.2f} for "
              f"x{b['records'] / a['records']:.0f} records), SDK {a['sdk_peak_mb']:.2f} -> "
              f"{b['sdk_peak_mb']:.2f} MB")


if __name__ == "__main__":
    main()
