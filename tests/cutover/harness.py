"""Real old consumers (subprocesses), a producer that keeps writing, gated bridges in a thread,
and the exactly-once check across old consumer + endpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from migrator.bridge.config import BridgeConfig
from migrator.bridge.gate import GatedBridges
from migrator.config import KafkaConnection, QStashConnection
from migrator.cutover.coordinator import Coordinator
from migrator.cutover.lease import holder
from migrator.kafka.app_producer import KeepProducing
from migrator.kafka.state_log import StateLog
from tests.bridge.harness import FAST_GROUP
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, unique
from tests.fixtures.qstash import QStashServer

__all__ = [
    "KeepProducing",
    "OldConsumer",
    "RollbackCase",
    "await_exactly_once",
    "check_exactly_once",
    "endpoint_coords",
    "gated_bridges",
    "rollback_case",
    "run_cli",
    "start_cli",
    "wait_for",
    "wait_said",
    "write_config",
]

Coord = tuple[str, int, int]
ROOT = Path(__file__).resolve().parents[2]


class OldConsumer:
    """``migrator/kafka/app_consumer.py`` as a subprocess: what it processed is in ``out``."""

    def __init__(self, bootstrap: str, group: str, topics: Iterable[str], out: Path, *,
                 assign: bool = False, skip: Path | None = None) -> None:
        self.out = out
        self.group = group
        cmd = [sys.executable, "-m", "migrator.kafka.app_consumer", bootstrap, group, str(out),
               *topics]
        if assign:
            cmd.append("--assign")
        if skip is not None:
            cmd += ["--skip", str(skip)]
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr,
                                        text=True, cwd=ROOT)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        reader.join(60)
        if not line or line[0].strip() != "READY":
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(30)
            self.stderr.seek(0)
            said = self.stderr.read()[-2000:]
            self._release()
            raise AssertionError(f"old consumer of {group} did not start: {said}")

    def stop(self) -> None:
        """SIGTERM: the application commits what it processed and leaves the group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        rc = self.process.wait(30)
        self._release()
        assert rc == 0, f"old consumer exited {rc}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        self._release()

    def _release(self) -> None:
        """The READY pipe and the stderr file (idempotent)."""
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.stderr.close()

    def processed(self) -> list[Coord]:
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text().splitlines():
            t, p, o = line.split()
            out.append((t, int(p), int(o)))
        return out


def endpoint_coords(endpoint: RecordingEndpoint) -> list[Coord]:
    out = []
    for req in list(endpoint.requests):
        h = req.headers
        if "kafka-topic" in h:
            out.append((h["kafka-topic"], int(h["kafka-partition"]), int(h["kafka-offset"])))
    return out


def check_exactly_once(old: list[Coord], new: list[Coord],
                       ends: dict[tuple[str, int], int]) -> tuple[list[Coord], list[Coord]]:
    """(missing, duplicated) across both sides for offsets [0, end) of every partition."""
    counts = Counter(old) + Counter(new)
    missing = [(t, p, o) for (t, p), end in sorted(ends.items()) for o in range(end)
               if (t, p, o) not in counts]
    dupes = sorted(c for c, n in counts.items() if n > 1)
    return missing, dupes


def await_exactly_once(old: Callable[[], list[Coord]], new: Callable[[], list[Coord]],
                       ends: dict[tuple[str, int], int], timeout: float = 45.0) -> None:
    """Wait until old + new cover every offset below ``ends``; fail on duplicates, and on
    anything missing at the timeout, naming the offsets."""
    deadline = time.monotonic() + timeout
    while True:
        missing, dupes = check_exactly_once(old(), new(), ends)
        assert not dupes, f"processed twice: {dupes[:20]} ({len(dupes)} in all)"
        if not missing:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"never processed: {missing[:20]} ({len(missing)} in all); "
                                 f"old {len(old())}, new {len(new())}, ends {ends}")
        time.sleep(0.2)


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@contextmanager
def gated_bridges(cfg: BridgeConfig, bootstrap: str,
                  qstash: QStashConnection | None = None) -> Iterator[GatedBridges]:
    gate = GatedBridges(cfg, KafkaConnection(bootstrap_servers=bootstrap), qstash=qstash,
                        consumer_overrides=FAST_GROUP, poll=0.1)
    error: list[BaseException] = []

    def run() -> None:
        try:
            gate.run()
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield gate
    finally:
        gate.stop()
        thread.join(90)
    assert not thread.is_alive(), "gated bridges did not stop"
    if error:
        raise error[0]


def wait_for(pred: Callable[[], bool], what: Callable[[], str], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting: {what()}")
        time.sleep(0.1)


def start_cli(err: Path, *args: str) -> subprocess.Popen[str]:
    """``python -m migrator ARGS`` in the background, its stderr written to ``err``."""
    with err.open("w") as sink:
        return subprocess.Popen([sys.executable, "-m", "migrator", *args],
                                stdout=subprocess.DEVNULL, stderr=sink, text=True, cwd=ROOT)


def wait_lease_expired(log: StateLog, group: str, timeout: float) -> None:
    """Wait until nobody holds ``group``'s lease in the cutover state topic read by ``log``."""
    seen: list[object] = [None]

    def expired() -> bool:
        seen.append(holder(log.read(), group, int(time.time() * 1000)))
        return seen[-1] is None

    wait_for(expired, lambda: f"the lease on group {group} still holds: {seen[-1]}",
             timeout=timeout)


def wait_said(err: Path, text: str, timeout: float = 60.0) -> None:
    """Wait until a command started by :func:`start_cli` wrote ``text`` to ``err``."""
    wait_for(lambda: text in err.read_text(), lambda: f"it said: {err.read_text()[-1000:]}",
             timeout=timeout)


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "migrator", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=ROOT)


@dataclass
class RollbackCase:
    """A 2-partition topic a producer keeps writing to, its old group read by a real old
    consumer, and a bridge config handing that group over to an endpoint through a QStash
    server (one publish-url destination), with its coordinator."""

    kafka: KafkaKit
    bootstrap: str
    topic: str
    group: str
    producer: KeepProducing
    old: OldConsumer
    out: Path
    path: Path
    cfg: BridgeConfig
    coord: Coordinator
    resumed: OldConsumer | None = None

    def resume_and_check(self, skip_file: Path, endpoint: Callable[[], list[Coord]]) -> None:
        """Restart the old consumer with the rollback's skip list, stop the producer, and
        check old consumer + endpoint processed every offset exactly once."""
        self.resumed = OldConsumer(self.bootstrap, self.group, [self.topic], self.out,
                                   skip=skip_file)
        time.sleep(2.0)
        self.producer.stop()
        ends = {(self.topic, p): e for p, e in self.kafka.end_offsets(self.topic, 2).items()}
        await_exactly_once(self.old.processed, endpoint, ends)


@contextmanager
def rollback_case(kafka: KafkaKit, bootstrap: str, server: QStashServer, endpoint_url: str,
                  tmp_path: Path, *, name: str, retries: int,
                  retry_delay: str) -> Iterator[RollbackCase]:
    """:class:`RollbackCase` for a test of ``cutover rollback`` on an unordered QStash route,
    once the old consumer has processed 80 records; everything it started is stopped on the
    way out."""
    topic = kafka.create_topic(unique(name), partitions=2)
    group = unique("ledger")
    producer = KeepProducing(bootstrap, {topic: 2}, rate=100)
    out = tmp_path / "old.txt"
    old = OldConsumer(bootstrap, group, [topic], out)
    data = {
        "kafka": {"bootstrap_servers": bootstrap},
        "qstash": {"url": server.url, "token": server.token},
        "group": unique("mb"), "cutover_topic": unique("_cutover"),
        "routes": [{"topic": topic, "destinations": [{
            "kind": "publish-url", "url": endpoint_url, "retries": retries,
            "retry_delay": retry_delay, "replaces_group": group}]}],
        "batch": {"count": 20, "linger_ms": 5},
        "retry": {"initial_backoff": 0.05, "max_backoff": 0.5}, "shutdown_deadline": 10,
    }
    path = write_config(tmp_path / "bridge.yaml", data)
    cfg = BridgeConfig.model_validate(data)
    coord = Coordinator(cfg, KafkaConnection(bootstrap_servers=bootstrap),
                        qstash=server.connection, poll=0.2)
    case = RollbackCase(kafka, bootstrap, topic, group, producer, old, out, path, cfg, coord)
    try:
        wait_for(lambda: len(old.processed()) >= 80, lambda: f"old saw {len(old.processed())}")
        yield case
    finally:
        producer.stop()
        coord.close()
        old.kill()
        if case.resumed is not None:
            case.resumed.kill()
