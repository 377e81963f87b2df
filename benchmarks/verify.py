"""Benchmark: `migrator cutover verify` against reading the same log pages with the `qstash` SDK.

    python benchmarks/verify.py [--records 20000]

1. ``--records`` small records on a 4-partition topic; an old group committed at 0, prepared and
   switched (no bridge: the bridge group's committed offsets are then set to the end, as a
   bridge that delivered everything would leave them).
2. The same records published to the local QStash server with ``/v2/batch`` exactly as the
   bridge stamps them (the hand-off's label, forwarded Kafka-Topic/Partition/Offset), delivered
   to a real endpoint (uvicorn, 200 ok).
3. Timed, each in this process with tracemalloc's peak: ``verify_group`` (exhaustive: Kafka
   range, dead letters, every log page of the label, the DLQ), and the official SDK's
   ``client.log.list(filter={"label": ...})`` paged through the same label, 100 per page.

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20_000)
    args = ap.parse_args()
    n = args.records

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
        coord = Coordinator(cfg, conn, qstash=(server.url, server.token), poll=0.2)
        parts = [(topic, p) for p in range(4)]
        coord.admin.alter_group_offsets(group, dict.fromkeys(parts, 0))
        coord.prepare(group)
        state = coord.switch(group, watch=0.5, timeout=30, require_bridge=False)
        ends = coord.admin.list_offsets(parts, "latest")
        coord.admin.alter_group_offsets(state.bridge_group, ends)
        label = cutover_label(group, 1)
        items = [{"destination": url, "body": f"v{p}-{o}", "headers": {
            "Upstash-Label": label, "Upstash-Deduplication-Id": f"b-{p}-{o}",
            "Upstash-Forward-Kafka-Topic": topic, "Upstash-Forward-Kafka-Partition": str(p),
            "Upstash-Forward-Kafka-Offset": str(o)}}
            for (_t, p), end in ends.items() for o in range(end)]
        ids: list[str] = []
        with httpx.Client(timeout=60) as http:
            for i in range(0, len(items), 500):
                r = http.post(f"{server.url}/v2/batch", json=items[i:i + 500],
                              headers=server.headers)
                r.raise_for_status()
                ids += [x["messageId"] for x in r.json()]
            deadline = time.monotonic() + 600
            probe = ids[:: max(1, len(ids) // 50)] + ids[-5:]
            while time.monotonic() < deadline:
                r = http.get(f"{server.url}/v2/logs", params={"messageIds": ",".join(probe),
                                                               "state": "DELIVERED",
                                                               "count": 1000},
                             headers=server.headers)
                if len({e["messageId"] for e in r.json()["logs"]}) == len(set(probe)):
                    break
                time.sleep(1.0)
        time.sleep(2.0)
        state = coord.load(group)

        def run_verify() -> Any:
            return verify_group(cfg, state, parts, coord.admin, conn,
                                qstash=(server.url, server.token), max_records=n + 1)

        def run_sdk() -> int:
            client = server.client()
            pages = entries = 0
            cursor = None
            # qstash-py 3.4 prints each page: discarded, not kept in memory
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                while True:
                    resp = client.log.list(cursor=cursor, count=100, filter={"label": label})
                    pages += 1
                    entries += len(resp.logs)
                    cursor = resp.cursor
                    if not cursor:
                        break
            return pages

        t_sdk, m_sdk, sdk_pages = _measure(run_sdk)
        t_ver, m_ver, report = _measure(run_verify)
        totals = report.totals()
        print(f"records {n}; verify: {report.verdict}, delivered {totals['delivered']}, "
              f"in QStash {totals['in_qstash']}, gaps {totals['gap']}")
        print(f"verify:  {t_ver:.2f} s, {report.log_pages} log pages, peak {m_ver:.1f} MB "
              f"(tracemalloc)")
        print(f"SDK:     {t_sdk:.2f} s, {sdk_pages} log pages, peak {m_sdk:.1f} MB")
        print(f"ratio time {t_ver / t_sdk:.2f}, memory {m_ver / max(m_sdk, 0.001):.2f}")
        coord.close()
    finally:
        endpoint.terminate()
        server.stop()


if __name__ == "__main__":
    main()
