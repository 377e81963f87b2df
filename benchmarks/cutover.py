"""Benchmark: `migrator cutover` hand-off latency, backlog rate after a switch, memory per group.

    python benchmarks/cutover.py [--records 100000] [--watch 2] [--groups 10]

1. ``--records`` small records on a 4-partition topic, an old group committed at 0 (its whole
   backlog is handed over).
2. Baseline: a plain bridge (no cutover) in a fresh group reads the backlog from the start into
   an instant-reply ``/v2/batch`` stand-in: its backlog rate.
3. Cutover: gated bridges running, ``prepare``, ``switch --watch W``: the time the switch took
   (the watch window included), then from ``switched`` to the first record accepted at the
   hand-off offset, and to zero lag (the bridge group's committed offsets at the end); the
   backlog rate after the switch against the baseline's.
4. Memory: RSS of gated bridges before and after ``--groups`` more groups (one small topic
   each) are switched, per group.

Connection details from KAFKA_BOOTSTRAP_SERVERS, else the running stack's own state (as `migrator dev env`).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bridge import (  # noqa: E402
    INSTANT_QSTASH_APP,
    _bootstrap,
    free_port,
    produce,
    start_endpoint,
)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _commit(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    c.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
    c.close()


def _wait_committed(admin: Any, group: str, ends: dict[tuple[str, int], int],
                    timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = admin.list_group_offsets([group]).get(group, {})
        if all((got.get(tp) or 0) >= end for tp, end in ends.items()):
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"group {group} did not reach {ends}")


def _first_delivery(stats: Any, within: float = 60.0) -> float:
    """When ``stats.delivered`` first became positive (polled every 5 ms)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if stats() > 0:
            return time.monotonic()
        time.sleep(0.005)
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--watch", type=float, default=2.0)
    ap.add_argument("--groups", type=int, default=10)
    args = ap.parse_args()

    from pydantic import SecretStr

    from migrator.bridge.config import BridgeConfig
    from migrator.bridge.gate import GatedBridges
    from migrator.bridge.runner import Bridge
    from migrator.config import KafkaConnection, QStashConnection
    from migrator.cutover.coordinator import Coordinator
    from migrator.kafka.group_offsets import GroupOffsetAdmin

    bootstrap = _bootstrap()
    conn = KafkaConnection(bootstrap_servers=bootstrap)
    run = uuid.uuid4().hex[:6]
    topic = f"bench-cutover-{run}"
    produce(bootstrap, topic, args.records, 100, 4)
    port = free_port()
    stand_in = start_endpoint(port, INSTANT_QSTASH_APP)
    qstash = QStashConnection(url=f"http://127.0.0.1:{port}", token=SecretStr("bench-token"))
    admin = GroupOffsetAdmin(conn)
    ends = admin.list_offsets([(topic, p) for p in range(4)], "latest")
    old = f"old-{run}"
    _commit(bootstrap, old, dict.fromkeys(ends, 0))
    dest = {"kind": "publish-url", "url": "https://example.com/h"}
    base: dict[str, Any] = {"kafka": {"bootstrap_servers": bootstrap},
                            "qstash": {"url": qstash.url,
                                       "token": qstash.token.get_secret_value()},
                            "cutover_topic": f"_bench_cutover_{run}"}
    try:
        # 2. baseline (run again after the cutover: the two runs' spread is the noise)
        def baseline(label: str) -> tuple[float, float]:
            group = f"plain-{label}-{run}"
            plain = BridgeConfig.model_validate({**base, "group": group,
                                                 "routes": [{"topic": topic,
                                                             "destinations": [dest]}]})
            bridge = Bridge(plain, conn, qstash=qstash)
            t0 = time.monotonic()
            thread = threading.Thread(target=bridge.run, daemon=True)
            thread.start()
            first = _first_delivery(lambda: bridge.stats.delivered)
            t_end = _wait_committed(admin, group, ends)
            bridge.stop()
            thread.join(60)
            rate, drain = args.records / (t_end - t0), args.records / (t_end - first)
            print(f"baseline {label}: plain bridge, {args.records:,} records backlog: "
                  f"{t_end - t0:.2f}s ({rate:,.0f} rec/s from its start, {drain:,.0f} rec/s "
                  "from its first delivery; to committed = end)")
            return rate, drain

        base_rate, base_drain = baseline("before")

        # 3. cutover
        others = [f"bench-small-{run}-{i}" for i in range(args.groups)]
        for name in others:
            produce(bootstrap, name, 100, 100, 1)
            _commit(bootstrap, f"old-{name}", {(name, 0): 0})
        routes = [{"topic": topic, "destinations": [{**dest, "replaces_group": old}]}]
        routes += [{"topic": name, "destinations": [{**dest, "replaces_group": f"old-{name}"}]}
                   for name in others]
        cfg = BridgeConfig.model_validate({**base, "group": f"mb-{run}", "routes": routes})
        gate = GatedBridges(cfg, conn, qstash=qstash)
        gate_thread = threading.Thread(target=gate.run, daemon=True)
        gate_thread.start()
        coord = Coordinator(cfg, conn, qstash=qstash, poll=0.1)
        coord.prepare(old)
        time.sleep(2.0)
        t0 = time.monotonic()
        state = coord.switch(old, watch=args.watch, timeout=120)
        t_switched = time.monotonic()

        def delivered() -> int:
            running = gate._running.get(old)
            return running.bridge.stats.delivered if running is not None else 0

        first = _first_delivery(delivered)
        t_zero = _wait_committed(admin, state.bridge_group, ends)
        rate = args.records / (t_zero - t_switched)
        drain = args.records / (t_zero - first)
        print(f"switch (watch {args.watch:g}s included): {t_switched - t0:.2f}s")
        print(f"switched -> first record accepted at the hand-off: {first - t_switched:.3f}s")
        print(f"switched -> zero lag ({args.records:,} records): {t_zero - t_switched:.2f}s "
              f"({rate:,.0f} rec/s, {rate / base_rate:.2f} of the baseline from its start)")
        print(f"drain rate from the first delivery: {drain:,.0f} rec/s, "
              f"{drain / base_drain:.2f} of the baseline's")

        after_rate, after_drain = baseline("after")
        print(f"baseline after / before: {after_rate / base_rate:.2f} from the start, "
              f"{after_drain / base_drain:.2f} from the first delivery (the noise)")
        mean_rate, mean_drain = (base_rate + after_rate) / 2, (base_drain + after_drain) / 2
        print(f"cutover against the mean of both baselines: {rate / mean_rate:.2f} from "
              f"switched, {drain / mean_drain:.2f} from the first delivery")

        # 4. memory per group
        before = _rss_mb()
        for name in others:
            coord.prepare(f"old-{name}")
            coord.switch(f"old-{name}", watch=0.5, timeout=60)
        for name in others:
            _wait_committed(admin, f"mb-{run}.old-{name}", {(name, 0): 100})
        time.sleep(2.0)
        after = _rss_mb()
        print(f"RSS {before:.0f} MB -> {after:.0f} MB with {args.groups} more groups switched: "
              f"{(after - before) / max(1, args.groups):.1f} MB per group")
        gate.stop()
        gate_thread.join(120)
        coord.close()
    finally:
        stand_in.terminate()


if __name__ == "__main__":
    main()
