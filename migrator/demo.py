"""The end-to-end demo: the main job on the local stack, as a user would run it.

It starts (or reuses) the local stack, seeds a sample estate, then runs the real commands in
order: ``audit`` -> ``plan`` (with an endpoint file pointing at a local receiver) -> ``apply``
-> ``apply`` again (nothing to do) -> ``bridge run`` -> the cutover of every consumer group
while a producer keeps writing: a real old consumer process per group (the sample's archive
connector is one already) runs, ``cutover prepare``, the old consumer stops, ``cutover switch``;
then one group is rolled back, its old consumer runs again, and it is switched again. It checks
per group that old consumer + endpoint processed every record exactly once, and that every
delivery was signed by QStash.
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
        self.coords: dict[str, list[tuple[str, int, int]]] = {}  # every delivery, repeats kept
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
            if coords[0]:
                self.coords.setdefault(path, []).append((coords[0], int(coords[1]), int(coords[2])))

    def count(self, path: str) -> int:
        with self._lock:
            return len(self.seen.get(path, ()))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class DemoResult:
    """What each stage did. Units: a *record* is one Kafka record; the bridge sends one *message*
    per record and destination (a QStash publish); QStash makes one *delivery* per endpoint of
    a message (a URL-group message: one per endpoint of the group)."""

    workdir: Path
    expected: dict[str, int] = field(default_factory=dict)  # endpoint path -> records
    received: dict[str, int] = field(default_factory=dict)  # endpoint path -> distinct records
    deliveries: int = 0  # HTTP requests the endpoints received
    bad_signatures: int = 0
    second_apply: str = ""
    backlog: int = -1  # what `migrator bridge check` said the bridge would deliver
    routed_records: int = 0  # the records of the routed topics (each once)
    records_read: int = -1  # from the bridge's stop summary
    messages_sent: int = -1
    audit: str = ""  # one line per stage, as the commands reported
    plan: str = ""
    apply: str = ""

    # per group: (old consumer's records, endpoint's records, missing, duplicated) over every
    # offset from the group's position before the demo to the end
    groups: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(ok for _stage, ok, _line in self.stages())

    def stages(self) -> list[tuple[str, bool, str]]:
        """(stage, passed, one line with its counts and units)."""
        deliveries = sum(self.expected.values())
        again = next((line for line in self.second_apply.splitlines()
                      if line.startswith("Nothing to do")), self.second_apply or "(no output)")
        return [
            ("audit", bool(self.audit), self.audit or "no inventory"),
            ("plan", bool(self.plan), self.plan or "no plan"),
            ("apply", again.startswith("Nothing to do"), f"{self.apply} Again: {again}"),
            ("bridge check", self.backlog == self.routed_records,
             f"backlog {self.backlog:,} records; the routed topics hold {self.routed_records:,}"),
            ("bridge", self.records_read >= 0 and self.messages_sent >= 0,
             f"{self.records_read:,} records read from the hand-off offsets on; "
             f"{self.messages_sent:,} messages sent (one per record and destination)"),
            *(("cutover " + group, bool(self.groups) and not missing and not dupes,
               f"old consumer {old:,} records + endpoint {new:,} records: "
               + ("every record exactly once" if not missing and not dupes
                  else f"{missing:,} missing, {dupes:,} twice"))
              for group, (old, new, missing, dupes) in sorted(self.groups.items())),
            ("cutover", bool(self.groups), f"{len(self.groups)} consumer groups handed over"),
            ("delivery", self.expected == self.received and self.deliveries == deliveries
             and self.bad_signatures == 0,
             f"{self.deliveries:,} deliveries of {deliveries:,} (QStash delivers a URL-group "
             "message to each endpoint of the group); every endpoint got each of its records "
             f"{'once' if self.expected == self.received else 'NOT once'}; "
             f"{self.bad_signatures} bad signatures"),
        ]


def _migrator(args: list[str], env: dict[str, str], progress: Progress) -> str:
    progress("$ migrator " + " ".join(args))
    out = subprocess.run([sys.executable, "-m", "migrator", *args], capture_output=True, text=True,
                         env=env, timeout=600, check=False)
    if out.returncode != 0:
        raise MigratorError(f"`migrator {' '.join(args)}` exited {out.returncode}: "
                            f"{(out.stderr or out.stdout).strip()[-1500:]}")
    return out.stdout


def run_demo(info: StackInfo, workdir: Path, progress: Progress, *, timeout: float = 180.0) -> DemoResult:
    """Seed, audit, plan, apply (twice), bridge and cut every group over; return what arrived
    where."""
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
        result.audit = (f"{len(snapshot['topics'])} topics, {len(snapshot['consumer_groups'])} "
                        f"consumer groups, {len(snapshot['findings'])} findings "
                        "(inventory.json, audit.html)")
        groups = {g["group_id"]: g["topics"] for g in snapshot["consumer_groups"]}
        paths = {group: "/" + re.sub(r"[-.]+", "-", group.replace(prefix, "")).strip("-") for group in groups}
        endpoints.write_text("groups:\n" + "".join(f"  {g}: {receiver.url}{p}\n" for g, p in paths.items()),
                             encoding="utf-8")
        plan_dir = workdir / "plan"
        planned = _migrator(["plan", str(inventory), "--endpoints", str(endpoints), "-o", str(plan_dir)],
                            env, progress)
        result.plan = next((line for line in planned.splitlines() if " topics: " in line), "")
        applied = _migrator(["apply", str(plan_dir / "plan.yaml")], env, progress)
        result.apply = next((line for line in applied.splitlines() if line.startswith("Applied ")),
                            "Nothing to apply.")
        result.second_apply = _migrator(["apply", str(plan_dir / "plan.yaml")], env, progress).strip()
        check = json.loads(_migrator(["bridge", "check", "--config", str(plan_dir / "bridge.yaml"),
                                      "--format", "json"], env, progress))
        result.backlog = int(check["backlog"])
        result.routed_records = sum(estate.records.get(t, 0) for t in _routed(plan_dir / "bridge.yaml"))

        def hand_over() -> dict[str, int]:
            return _cut_over(info, estate, paths, plan_dir / "bridge.yaml", env, progress,
                             receiver, result)

        result.expected, log = _bridge(plan_dir / "bridge.yaml", env, receiver, hand_over,
                                       timeout, progress)
        result.records_read, result.messages_sent = _bridge_counts(log)
        result.received = {p: receiver.count(p) for p in result.expected}
        result.deliveries, result.bad_signatures = receiver.deliveries, receiver.bad_signatures
    finally:
        receiver.close()
    return result


def _cut_over(info: StackInfo, estate: SampleEstate, paths: dict[str, str], bridge_file: Path,
              env: dict[str, str], progress: Progress, receiver: Receiver,
              result: DemoResult) -> dict[str, int]:
    """The cutover, per group, while a producer keeps writing: start the group's old consumer
    (a real process; the sample's archive connector is one already), ``cutover prepare``, stop
    the old consumer, ``cutover switch``; then roll the first group back, let its old consumer
    run again, and switch it again. Checks, per group, that old consumer + endpoint processed
    every offset from the group's position before the demo to the end exactly once (into
    ``result.groups``); returns the records each endpoint path must receive."""
    import httpx

    from migrator.bridge.config import load_bridge_config
    from migrator.config import KafkaConnection
    from migrator.cutover.scope import replaced_groups, routed_topics
    from migrator.kafka.admin import KafkaAdmin
    from migrator.kafka.app_producer import KeepProducing

    cfg = load_bridge_config(bridge_file)
    config = ["--config", str(bridge_file)]
    admin = KafkaAdmin(KafkaConnection.from_properties({"bootstrap.servers": info.bootstrap_servers}))
    groups = replaced_groups(cfg)
    topics = {g: routed_topics(cfg, g) for g in groups}
    parts = {t: estate.topics.get(t, 1) for ts in topics.values() for t in ts}
    before = {g: admin.list_group_offsets([g]).get(g, {}) for g in groups}
    workdir = bridge_file.parent
    # producers keep writing (not to decode routes: their values are Schema-Registry framed)
    plain = {t: n for t, n in parts.items()
             if all(r.payload.mode == "bytes" for r in cfg.routes if r.topic == t)}
    producer = KeepProducing(info.bootstrap_servers, plain, rate=20.0)
    consumers: dict[str, _AppConsumer] = {}
    try:
        for g in groups:
            if estate.connector and g == f"connect-{estate.connector}":
                continue
            consumers[g] = _AppConsumer(info.bootstrap_servers, g, topics[g],
                                        workdir / f"old-{paths[g].strip('/')}.txt", progress)
        time.sleep(2.0)  # the old consumers process live records
        for g in groups:
            _migrator(["cutover", "prepare", g, *config], env, progress)
            if g in consumers:
                consumers[g].stop(progress)
            else:
                progress(f"stopping connector {estate.connector} (the old consumer of {g})")
                httpx.put(f"{info.connect_url}/connectors/{estate.connector}/stop", timeout=30)
            _migrator(["cutover", "switch", g, *config, "--watch", "2s", "--timeout", "2m"],
                      env, progress)
        if consumers:
            g = next(iter(consumers))
            time.sleep(1.0)
            skip = workdir / f"skip-{paths[g].strip('/')}.json"
            # the old consumer honours the rollback's skip list (records an unordered route
            # delivered above the rollback point: docs/cutover.md)
            _migrator(["cutover", "rollback", g, *config, "--skip-file", str(skip)], env, progress)
            consumers[g].start(progress, skip=skip)
            time.sleep(2.0)
            _migrator(["cutover", "prepare", g, *config], env, progress)
            consumers[g].stop(progress)
            _migrator(["cutover", "switch", g, *config, "--watch", "2s", "--timeout", "2m"],
                      env, progress)
        time.sleep(1.0)
    finally:
        producer.stop()
        for consumer in consumers.values():
            consumer.kill()
    ends = admin.list_offsets([(t, p) for t, n in parts.items() for p in range(n)], "latest")
    for g in groups:
        if g not in consumers:  # what the connector processed is not observable: check the
            # endpoint from its hand-off on
            status = json.loads(_migrator(["cutover", "status", g, *config, "--format", "json"],
                                          env, progress))["groups"][0]
            before[g] = {(h["topic"], h["partition"]): h["offset"] for h in status["handoff"]}
    span = {g: {(t, p, o) for t in topics[g] for p in range(parts[t])
                for o in range(before[g].get((t, p)) or 0, ends[(t, p)])} for g in groups}
    old = {g: consumers[g].processed() if g in consumers else [] for g in groups}
    expected: dict[str, int] = {}
    for g in groups:
        wanted = span[g] - set(old[g])
        if wanted:
            expected[paths[g]] = len(wanted)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(
            span[g] - set(old[g]) <= set(receiver.coords.get(paths[g], [])) for g in groups):
        time.sleep(0.25)
    for g in groups:
        new = receiver.coords.get(paths[g], [])
        both = [c for c in old[g] + new if c in span[g]]
        missing = len(span[g] - set(both))
        result.groups[g] = (len(old[g]), len(new), missing, len(both) - len(set(both)))
    return expected


class _AppConsumer:
    """The group's old consumer (``migrator.kafka.app_consumer``) as a process."""

    def __init__(self, bootstrap: str, group: str, topics: list[str], out: Path,
                 progress: Progress) -> None:
        self.cmd = [sys.executable, "-m", "migrator.kafka.app_consumer", bootstrap, group,
                    str(out), *topics]
        self.group, self.out = group, out
        self.proc: subprocess.Popen[str] | None = None
        self.start(progress)

    def start(self, progress: Progress, skip: Path | None = None) -> None:
        progress(f"starting the old consumer of {self.group}")
        cmd = [*self.cmd, "--skip", str(skip)] if skip is not None else self.cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "READY":
            raise MigratorError(f"the old consumer of {self.group} did not start")

    def stop(self, progress: Progress) -> None:
        progress(f"stopping the old consumer of {self.group} (it commits on shutdown)")
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def processed(self) -> list[tuple[str, int, int]]:
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text(encoding="utf-8").splitlines():
            t, p, o = line.split()
            out.append((t, int(p), int(o)))
        return out


def _routed(bridge_file: Path) -> set[str]:
    """The topics a bridge config routes."""
    return set(_destinations(bridge_file))


def _destinations(bridge_file: Path) -> dict[str, int]:
    """Topic -> how many destinations its route has in a bridge config (messages per record)."""
    import yaml

    data = yaml.safe_load(bridge_file.read_text(encoding="utf-8")) or {}
    return {r["topic"]: len(r.get("destinations", [])) for r in data.get("routes", [])}


_BRIDGE_COUNTS = re.compile(r"bridge stopped: ([\d,]+) records? read, ([\d,]+) messages? sent")


def _bridge_counts(log: Path) -> tuple[int, int]:
    """(records read, messages sent) from the bridge's stop summary; -1 when it has none."""
    found = _BRIDGE_COUNTS.search(log.read_text(encoding="utf-8", errors="replace"))
    if found is None:
        return -1, -1
    return int(found.group(1).replace(",", "")), int(found.group(2).replace(",", ""))


def _bridge(config: Path, env: dict[str, str], receiver: Receiver,
            hand_over: Callable[[], dict[str, int]], timeout: float,
            progress: Progress) -> tuple[dict[str, int], Path]:
    progress(f"$ migrator bridge run --config {config}  (until every record has arrived)")
    log = config.parent / "bridge.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "migrator", "bridge", "run", "--config", str(config)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    expected: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    try:
        expected = hand_over()
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
    return expected, log


def summary(result: DemoResult) -> str:
    """The per-endpoint table (records), then one line per stage, then the verdict."""
    width = max([len("endpoint"), *map(len, result.expected)])
    lines = [f"{'endpoint':<{width}}  {'records expected':>16}  {'records received':>16}"]
    for path, n in sorted(result.expected.items()):
        lines.append(f"{path:<{width}}  {n:>16,}  {result.received.get(path, 0):>16,}")
    lines.append("")
    stages = result.stages()
    name_width = max(len(stage) for stage, _, _ in stages)
    for stage, ok, line in stages:
        lines.append(f"{stage:<{name_width}}  {'ok    ' if ok else 'FAILED'}  {line}")
    lines.append("")
    lines.append("Demo passed: every record reached each endpoint of its consumer groups once, signed."
                 if result.ok else "Demo FAILED: see the stages marked FAILED above.")
    return "\n".join(lines)
