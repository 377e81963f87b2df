"""Soak: the bridge at a steady rate for a set time while a scripted schedule injects faults.

    python benchmarks/soak.py                     # 10 minutes, 100 records/s
    python benchmarks/soak.py --minutes 120 --rate 500 --out soak-out

The bridge runs as `migrator bridge run` (a child process, measured through /proc and its
/metrics) from a fresh topic on the running broker, through a local QStash server (its own,
on a state file), to a recording endpoint on 127.0.0.1. Fault proxies sit between the bridge
and QStash and between QStash and the endpoint. The schedule, one fault after another with
quiet time between: the bridge's connections to QStash hang, then lose their answers
mid-response, then slow down; QStash's connections to the endpoint are reset; the endpoint
answers in a second per request; the QStash server is killed (-9) and restarted on the same
file and port. Every ``--sample`` seconds (default 60) it records the bridge's RSS, open file
descriptors, threads, in-flight records, consumer lag and delivery latency p50/p99.

At the end, after the bridge drained: produced = delivered (distinct records at the endpoint),
duplicates (a copy QStash redelivered carries the same message id; a second message for one
record would be the bridge's fault), RSS and descriptor drift after warm-up against a stated
band (RSS within 48 MB, descriptors within 16), error lines in the bridge's log, the longest
stall (time with records produced and none arriving) and the fault it fell in. Prints a table,
writes ``soak.svg`` (RSS and lag over time) and ``soak.json`` to ``--out``; exit 1 when a check
fails. Connection details: KAFKA_BOOTSTRAP_SERVERS, else the running local stack's state.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.chaos.checks import free_port  # noqa: E402
from tests.fixtures.endpoint import ReceivedRequest, RecordingEndpoint, Reply  # noqa: E402
from tests.fixtures.faultproxy import HANG, PASS, RESET, FaultProxy, cut, latency  # noqa: E402
from tests.fixtures.kafka import KafkaKit, Rec, unique  # noqa: E402
from tests.fixtures.qstash import QStashServer, start_qstash_server  # noqa: E402

RSS_BAND_MB = 48.0
FD_BAND = 16
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def _bootstrap() -> str:
    from migrator.stack.state import stack_env

    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or stack_env().get("KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        raise SystemExit("no Kafka: set KAFKA_BOOTSTRAP_SERVERS or start the stack "
                         "(`.venv/bin/migrator dev up`)")
    return servers


@dataclass
class Sample:
    t: float
    rss_mb: float
    fds: int
    threads: int
    in_flight: float
    lag: float
    p50_ms: float
    p99_ms: float
    produced: int
    delivered: int
    fault: str


@dataclass
class SoakResult:
    minutes: float
    produced: int = 0
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    double_published: int = 0  # records with more than one QStash message id
    rss_drift_mb: float = 0.0
    fd_drift: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    longest_stall_s: float = 0.0
    longest_stall_fault: str = ""
    error_lines: list[str] = field(default_factory=list)
    qstash_dlq: list[str] = field(default_factory=list)  # QStash gave up on these (its errors)
    samples: list[Sample] = field(default_factory=list)
    exit_code: int | None = None

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.double_published == 0 and not self.error_lines
                and abs(self.rss_drift_mb) <= RSS_BAND_MB and abs(self.fd_drift) <= FD_BAND
                and self.exit_code is None)


class Responder:
    """The endpoint: answers at once, or after ``delay`` seconds while slow."""

    def __init__(self) -> None:
        self.delay = 0.0

    def __call__(self, _req: ReceivedRequest) -> Reply:
        if self.delay:
            time.sleep(self.delay)
        return Reply()


def _proc(pid: int) -> tuple[float, int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss, len(os.listdir(f"/proc/{pid}/fd")), threads


def _scrape(port: int) -> dict[str, Any]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    in_flight = lag = 0.0
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("bridge_in_flight_records{", "bridge_in_flight_records ")):
            in_flight += float(line.split()[-1])  # one series per bridge group
        elif line.startswith("bridge_consumer_lag{"):
            lag += float(line.split()[-1])
        elif line.startswith("bridge_delivery_latency_seconds_bucket{"):
            le = re.search(r'le="([^"]+)"', line).group(1)  # type: ignore[union-attr]
            buckets[le] = buckets.get(le, 0.0) + float(line.split()[-1])
    return {"in_flight": in_flight, "lag": lag, "buckets": buckets}


def _quantile(prev: dict[str, float], now: dict[str, float], q: float) -> float:
    """Upper bucket bound (ms) holding the q-quantile of the observations since ``prev``."""
    bounds = [*map(str, map(float, LATENCY_BUCKETS)), "+Inf"]
    counts = [now.get(b, 0.0) - prev.get(b, 0.0) for b in bounds]
    total = counts[-1]
    if total <= 0:
        return 0.0
    for b, c in zip(bounds, counts, strict=True):
        if c >= q * total:
            return float("inf") if b == "+Inf" else float(b) * 1000
    return float("inf")


class Soak:
    def __init__(self, minutes: float, rate: int, sample_s: float, partitions: int = 4,
                 bootstrap: str | None = None) -> None:
        self.minutes, self.rate, self.sample_s, self.partitions = minutes, rate, sample_s, partitions
        self.bootstrap = bootstrap
        self.result = SoakResult(minutes)
        self.fault = "none"
        self.produced = 0
        self._stop = threading.Event()
        self.work = Path(tempfile.mkdtemp(prefix="soak-"))

    # -- pieces -------------------------------------------------------------------------------
    def _delivered(self) -> int:
        return len({(r.headers.get("kafka-partition"), r.headers.get("kafka-offset"))
                    for r in list(self.endpoint.requests)})

    def _produce(self) -> None:
        step = 0.1
        per_step = max(1, round(self.rate * step))
        next_at = time.monotonic()
        while not self._stop.is_set():
            i0 = self.produced
            self.kafka.produce(self.topic, (Rec(json.dumps({"i": i}), partition=i % self.partitions)
                                            for i in range(i0, i0 + per_step)))
            self.produced += per_step
            next_at += step
            time.sleep(max(0.0, next_at - time.monotonic()))

    def _watch_stalls(self) -> None:
        last_count, last_growth, fault_at_start = 0, time.monotonic(), "none"
        while not self._stop.is_set() or self._delivered() < self.produced:
            count, now = self._delivered(), time.monotonic()
            if count > last_count:
                gap = now - last_growth
                if gap > self.result.longest_stall_s:
                    self.result.longest_stall_s = round(gap, 1)
                    self.result.longest_stall_fault = fault_at_start
                last_count, last_growth, fault_at_start = count, now, self.fault
            elif count >= self.produced:
                last_growth, fault_at_start = now, self.fault  # nothing to deliver: no stall
            if self._stop.is_set() and now - last_growth > 60:
                return
            time.sleep(0.25)

    def _restart_qstash(self) -> None:
        old = self.qstash
        old.close()  # killed already: this closes its stderr capture
        self.qstash = start_qstash_server(
            db=old.db, port=self.qstash_port, token=old.token,
            current_signing_key=old.current_signing_key, next_signing_key=old.next_signing_key,
            backoff_scale=1.0)

    def _schedule(self) -> list[tuple[str, Callable[[], None], Callable[[], None]]]:
        to_q, to_ep = self.to_qstash, self.to_endpoint
        return [
            ("bridge->qstash hang", lambda: to_q.set(HANG), lambda: to_q.set(PASS)),
            ("bridge->qstash cut mid-answer", lambda: to_q.set(cut(0)), lambda: to_q.set(PASS)),
            ("bridge->qstash latency 200ms", lambda: to_q.set(latency(0.2)),
             lambda: to_q.set(PASS)),
            ("qstash->endpoint resets", lambda: to_ep.set(RESET), lambda: to_ep.set(PASS)),
            ("endpoint slow 1s", lambda: setattr(self.responder, "delay", 1.0),
             lambda: setattr(self.responder, "delay", 0.0)),
            ("qstash kill -9", self.qstash.kill, self._restart_qstash),
        ]

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> SoakResult:
        total = self.minutes * 60
        self.kafka = KafkaKit(self.bootstrap or _bootstrap(), None)
        self.topic = self.kafka.create_topic(unique("soak"), partitions=self.partitions)
        self.responder = Responder()
        self.endpoint = RecordingEndpoint(self.responder)
        self.to_endpoint = FaultProxy.to_url(self.endpoint.url)
        self.qstash_port = free_port()
        # backoff scale 1: the server's scale also shrinks Upstash-Retry-Delay (500 ms -> 5 ms)
        self.qstash: QStashServer = start_qstash_server(db=str(self.work / "qstash.db"),
                                                        port=self.qstash_port, backoff_scale=1.0)
        self.to_qstash = FaultProxy.to_url(self.qstash.url)
        metrics_port = free_port()
        config = {
            "kafka": {"bootstrap_servers": self.kafka.bootstrap}, "group": unique("soak-g"),
            "qstash": {"request_timeout": 3},
            "batch": {"count": 50, "linger_ms": 20}, "in_flight": {"batches": 4},
            "retry": {"initial_backoff": 0.05, "max_backoff": 1.0},
            "routes": [{"topic": self.topic, "destinations": [{
                "kind": "publish-url", "url": self.to_endpoint.url + "/hook",
                "retries": 60, "retry_delay": "500", "timeout": "3s"}]}],
        }
        cfg_path = self.work / "bridge.yaml"
        cfg_path.write_text(yaml.safe_dump(config))
        log_path = self.work / "bridge.log"
        env = {**os.environ, "QSTASH_URL": self.to_qstash.url, "QSTASH_TOKEN": self.qstash.token}
        with open(log_path, "w") as log:
            bridge = subprocess.Popen(
                [sys.executable, "-m", "migrator", "bridge", "run", "--config", str(cfg_path),
                 "--metrics-port", str(metrics_port), "-X", "session.timeout.ms=6000",
                 "-X", "heartbeat.interval.ms=500"], stdout=log, stderr=log, env=env)
        threads = [threading.Thread(target=self._produce, daemon=True),
                   threading.Thread(target=self._watch_stalls, daemon=True)]
        for th in threads:
            th.start()
        schedule = self._schedule()
        warmup = min(60.0, total * 0.15)
        fault_s = max(3.0, min(15.0, total * 0.5 / len(schedule) / 1.5))
        gap = (total * 0.8 - warmup) / len(schedule)
        plan = [(warmup + k * gap, warmup + k * gap + fault_s, f) for k, f in enumerate(schedule)]
        started = time.monotonic()
        next_sample = started
        prev_buckets: dict[str, float] = {}
        drift_from: Sample | None = None
        try:
            while (now := time.monotonic() - started) < total:
                if bridge.poll() is not None:
                    self.result.exit_code = bridge.returncode
                    break
                for k, (begin, end, (name, on, off)) in enumerate(plan):
                    if begin <= now and self.fault == "none" and name not in self.result.faults:
                        self.fault = name
                        on()
                    if end <= now and self.fault == name:
                        off()
                        self.fault = "none"
                        self.result.faults[name] = 1
                        plan[k] = (begin, end, (name, on, off))
                if time.monotonic() >= next_sample:
                    next_sample += self.sample_s
                    try:
                        m = _scrape(metrics_port)
                    except httpx.HTTPError:
                        m = {"in_flight": -1.0, "lag": -1.0, "buckets": prev_buckets}
                    rss, fds, nthreads = _proc(bridge.pid)
                    s = Sample(round(now, 1), round(rss, 1), fds, nthreads, m["in_flight"],
                               m["lag"], _quantile(prev_buckets, m["buckets"], 0.5),
                               _quantile(prev_buckets, m["buckets"], 0.99), self.produced,
                               self._delivered(), self.fault)
                    prev_buckets = m["buckets"]
                    self.result.samples.append(s)
                    if drift_from is None and now >= warmup and self.fault == "none":
                        drift_from = s
                time.sleep(0.1)
        finally:
            self._stop.set()
            threads[0].join(10)
            deadline = time.monotonic() + 120
            while self._delivered() < self.produced and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(1.5)
            last = self.result.samples[-1] if self.result.samples else None
            if bridge.poll() is None:
                rss, fds, _ = _proc(bridge.pid)
                last = Sample(round(time.monotonic() - started, 1), round(rss, 1), fds, 0, 0, 0,
                              0, 0, self.produced, self._delivered(), "drained")
                bridge.terminate()
                bridge.wait(60)
            threads[1].join(5)
            try:
                dlq = httpx.get(self.qstash.url + "/v2/dlq", headers=self.qstash.headers,
                                timeout=10).json().get("messages", [])
                self.result.qstash_dlq = [f"{m.get('responseStatus')} {m.get('error', '')} "
                                          f"retries={m.get('maxRetries')}"[:120]
                                          for m in dlq]
            except (httpx.HTTPError, ValueError) as exc:
                self.result.qstash_dlq = [f"could not read QStash's DLQ: {exc}"]
            self.to_qstash.close()
            self.to_endpoint.close()
            self.qstash.close()
            self.endpoint.close()
        r = self.result
        r.produced = self.produced
        r.delivered = self._delivered()
        r.lost = r.produced - r.delivered
        r.duplicates = len(self.endpoint.requests) - r.delivered
        ids: dict[tuple[str | None, str | None], set[str]] = {}
        for req in self.endpoint.requests:
            ids.setdefault((req.headers.get("kafka-partition"), req.headers.get("kafka-offset")),
                           set()).add(req.headers.get("upstash-message-id", ""))
        r.double_published = sum(1 for v in ids.values() if len(v) > 1)
        if drift_from is not None and last is not None:
            r.rss_drift_mb = round(last.rss_mb - drift_from.rss_mb, 1)
            r.fd_drift = last.fds - drift_from.fds
        r.error_lines = [line for line in log_path.read_text().splitlines()
                         if " ERROR " in line or "Traceback" in line][:20]
        return r


def table(r: SoakResult) -> str:
    head = (f"{'t s':>6} {'RSS MB':>7} {'fds':>4} {'thr':>4} {'inflt':>6} {'lag':>6} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'produced':>9} {'delivered':>9}  fault")
    rows = [head] + [
        f"{s.t:>6.0f} {s.rss_mb:>7.1f} {s.fds:>4} {s.threads:>4} {s.in_flight:>6.0f} "
        f"{s.lag:>6.0f} {s.p50_ms:>7.0f} {s.p99_ms:>7.0f} {s.produced:>9} {s.delivered:>9}  "
        f"{s.fault}" for s in r.samples]
    rows += [
        "",
        f"produced {r.produced}, delivered {r.delivered}, lost {r.lost}, duplicate deliveries "
        f"{r.duplicates} (records published twice: {r.double_published})",
        f"RSS drift {r.rss_drift_mb:+.1f} MB (band ±{RSS_BAND_MB:.0f}), descriptor drift "
        f"{r.fd_drift:+d} (band ±{FD_BAND}) after warm-up",
        f"faults survived: {', '.join(r.faults) or 'none'}",
        f"longest stall {r.longest_stall_s:.1f} s (during: {r.longest_stall_fault})",
        f"bridge error lines: {len(r.error_lines)}; exit: {r.exit_code}",
        f"QStash DLQ: {len(r.qstash_dlq)} {sorted(set(r.qstash_dlq))[:3]}",
        "OK" if r.ok else "FAILED",
    ]
    return "\n".join(rows)


def svg(r: SoakResult) -> str:
    """RSS (MB) and consumer lag (records) over time, two polylines on one plot."""
    w, h, pad = 640, 300, 40
    pts = r.samples or [Sample(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, "")]
    tmax = max(s.t for s in pts) or 1.0

    def line(values: list[float], color: str, label: str, y: int) -> str:
        top = max(values) or 1.0
        coords = " ".join(f"{pad + s.t / tmax * (w - 2 * pad):.1f},"
                          f"{h - pad - v / top * (h - 2 * pad):.1f}" for s, v in zip(pts, values, strict=True))
        return (f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>'
                f'<text x="{w - pad - 180}" y="{y}" fill="{color}" font-size="12">'
                f"{label} (max {top:.0f})</text>")

    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'font-family="sans-serif"><rect width="{w}" height="{h}" fill="white"/>'
            f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#888"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#888"/>'
            f'<text x="{pad}" y="{h - 10}" font-size="12">0 s</text>'
            f'<text x="{w - pad - 30}" y="{h - 10}" font-size="12">{tmax:.0f} s</text>'
            + line([s.rss_mb for s in pts], "#1f77b4", "RSS MB", 20)
            + line([max(0.0, s.lag) for s in pts], "#d62728", "lag records", 36)
            + "</svg>\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=100, help="records per second")
    p.add_argument("--sample", type=float, default=60.0, help="seconds between samples")
    p.add_argument("--out", type=Path, default=Path("soak-out"))
    args = p.parse_args(argv)
    result = Soak(args.minutes, args.rate, args.sample).run()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.svg").write_text(svg(result))
    data = asdict(result)
    (args.out / "soak.json").write_text(json.dumps(data, indent=1, default=str))
    print(table(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
