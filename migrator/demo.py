"""The end-to-end demo: the main job on the local stack, as a user would run it.

It starts (or reuses) the local stack, seeds a sample estate, then runs the real commands in
order: ``audit`` -> ``plan`` (with an endpoint file pointing at a local receiver) -> ``apply``
-> ``apply`` again (nothing to do) -> ``bridge run``, and checks that every record of every routed
topic reached its endpoint exactly once, signed by QStash.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from migrator.errors import MigratorError, StackError
from migrator.stack.sample import SampleEstate, seed_sample_estate
from migrator.stack.state import StackInfo

__all__ = ["DemoResult", "Receiver", "run_demo", "summary"]

Progress = Callable[[str], None]


class Receiver:
    """Local endpoints on 127.0.0.1 that verify the Upstash signature of each delivery."""

    def __init__(self, current_key: str, next_key: str) -> None:
        from qstash import Receiver as SignatureReceiver

        self.verifier = SignatureReceiver(current_signing_key=current_key, next_signing_key=next_key)
        self.seen: dict[str, set[tuple[str, str, str]]] = {}
        self.deliveries = 0
        self.bad_signatures = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # keep-alive replies are two writes

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.record(self.path, dict(self.headers.items()), body,
                                f"http://{self.headers.get('Host', '')}{self.path}")
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def record(self, path: str, headers: dict[str, str], body: bytes, url: str) -> None:
        lower = {k.lower(): v for k, v in headers.items()}
        try:
            self.verifier.verify(body=body.decode(), signature=lower.get("upstash-signature", ""), url=url)
            ok = True
        except Exception:
            ok = False
        coords = (lower.get("kafka-topic", ""), lower.get("kafka-partition", ""), lower.get("kafka-offset", ""))
        with self._lock:
            self.deliveries += 1
            self.bad_signatures += 0 if ok else 1
            self.seen.setdefault(path, set()).add(coords)

    def count(self, path: str) -> int:
        with self._lock:
            return len(self.seen.get(path, ()))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class DemoResult:
    workdir: Path
    expected: dict[str, int] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)
    deliveries: int = 0
    bad_signatures: int = 0
    second_apply: str = ""
    backlog: int = -1  # what `migrator bridge check` said the bridge would deliver
    routed_records: int = 0  # the records of the routed topics (each once)

    @property
    def ok(self) -> bool:
        return (self.expected == self.received and self.bad_signatures == 0
                and self.deliveries == sum(self.expected.values())
                and self.backlog == self.routed_records)


def _migrator(args: list[str], env: dict[str, str], progress: Progress) -> str:
    progress("$ migrator " + " ".join(args))
    out = subprocess.run([sys.executable, "-m", "migrator", *args], capture_output=True, text=True,
                         env=env, timeout=600, check=False)
    if out.returncode != 0:
        raise MigratorError(f"`migrator {' '.join(args)}` exited {out.returncode}: "
                            f"{(out.stderr or out.stdout).strip()[-1500:]}")
    return out.stdout


def run_demo(info: StackInfo, workdir: Path, progress: Progress, *, timeout: float = 180.0) -> DemoResult:
    """Seed, audit, plan, apply (twice) and bridge; return what arrived where."""
    if not (info.qstash_url and info.qstash_token and info.qstash_current_signing_key
            and info.qstash_next_signing_key):
        raise StackError("The stack has no local QStash server; restart it: `migrator dev down && migrator dev up`.")
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = f"demo{uuid.uuid4().hex[:6]}"
    progress(f"seeding a sample estate with prefix {prefix!r}")
    estate = seed_sample_estate(info, prefix)
    receiver = Receiver(info.qstash_current_signing_key, info.qstash_next_signing_key)
    env = {**os.environ, "QSTASH_URL": info.qstash_url, "QSTASH_TOKEN": info.qstash_token,
           "KAFKA_BOOTSTRAP_SERVERS": info.bootstrap_servers}
    result = DemoResult(workdir)
    try:
        inventory = workdir / "inventory.json"
        common = ["-b", info.bootstrap_servers, "--schema-registry-url", info.schema_registry_url,
                  "--connect-url", info.connect_url, "--include", f"{prefix}.*", "--sample-seconds", "2"]
        _migrator(["audit", *common, "--format", "json", "-o", str(inventory)], env, progress)
        _migrator(["audit", *common, "--format", "html", "-o", str(workdir / "audit.html")], env, progress)
        endpoints = workdir / "endpoints.yaml"
        snapshot = json.loads(inventory.read_text(encoding="utf-8"))
        groups = {g["group_id"]: g["topics"] for g in snapshot["consumer_groups"]}
        paths = {group: "/" + re.sub(r"[-.]+", "-", group.replace(prefix, "")).strip("-") for group in groups}
        endpoints.write_text("groups:\n" + "".join(f"  {g}: {receiver.url}{p}\n" for g, p in paths.items()),
                             encoding="utf-8")
        plan_dir = workdir / "plan"
        _migrator(["plan", str(inventory), "--endpoints", str(endpoints), "-o", str(plan_dir)], env, progress)
        _migrator(["apply", str(plan_dir / "plan.yaml")], env, progress)
        result.second_apply = _migrator(["apply", str(plan_dir / "plan.yaml")], env, progress).strip()
        result.expected = _expected(estate, groups, paths, plan_dir / "bridge.yaml")
        check = json.loads(_migrator(["bridge", "check", "--config", str(plan_dir / "bridge.yaml"),
                                      "--format", "json"], env, progress))
        result.backlog = int(check["backlog"])
        result.routed_records = sum(estate.records.get(t, 0) for t in _routed(plan_dir / "bridge.yaml"))
        _bridge(plan_dir / "bridge.yaml", env, receiver, result.expected, timeout, progress)
        result.received = {p: receiver.count(p) for p in result.expected}
        result.deliveries, result.bad_signatures = receiver.deliveries, receiver.bad_signatures
    finally:
        receiver.close()
    return result


def _expected(estate: SampleEstate, groups: dict[str, list[str]], paths: dict[str, str],
              bridge_file: Path) -> dict[str, int]:
    """Records each endpoint path must receive: every record of the routed topics its group reads."""
    routed = _routed(bridge_file)
    expected: dict[str, int] = {}
    for group, topics in groups.items():
        count = sum(estate.records.get(t, 0) for t in topics if t in routed)
        if count:
            expected[paths[group]] = count
    return expected


def _routed(bridge_file: Path) -> set[str]:
    """The topics a bridge config routes."""
    import yaml

    data = yaml.safe_load(bridge_file.read_text(encoding="utf-8")) or {}
    return {r["topic"] for r in data.get("routes", [])}


def _bridge(config: Path, env: dict[str, str], receiver: Receiver, expected: dict[str, int],
            timeout: float, progress: Progress) -> None:
    progress(f"$ migrator bridge run --config {config}  (until every record has arrived)")
    log = config.parent / "bridge.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "migrator", "bridge", "run", "--config", str(config)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if all(receiver.count(p) >= n for p, n in expected.items()):
                time.sleep(1.0)  # let any duplicate show itself before stopping
                break
            time.sleep(0.25)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if proc.returncode not in (0, -signal.SIGTERM):
        raise MigratorError(f"The bridge exited {proc.returncode}; see {log}.")
    progress(f"bridge stopped (log: {log})")


def summary(result: DemoResult) -> str:
    width = max([len("endpoint"), *map(len, result.expected)])
    lines = [f"{'endpoint':<{width}} {'expected':>8} {'received':>8}"]
    for path, n in sorted(result.expected.items()):
        lines.append(f"{path:<{width}} {n:>8} {result.received.get(path, 0):>8}")
    lines.append(f"deliveries {result.deliveries}, bad signatures {result.bad_signatures}")
    lines.append(f"bridge check backlog {result.backlog} records, routed topics hold "
                 f"{result.routed_records}")
    lines.append(json.dumps({"ok": result.ok}))
    return "\n".join(lines)
