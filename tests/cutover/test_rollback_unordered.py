"""Rollback of an unordered QStash route: QStash delivers in parallel, so when the rollback
cancels, the endpoint has records above the first one it did not get, and some deliveries are in
flight (a slow endpoint). The rollback waits for them to settle, sets the old group to the first
record per partition the endpoint did not get, and writes the records above it that the endpoint
did get to a skip list; the old consumer, restarted with it, processes the rest: old + new is
every offset exactly once (docs/cutover.md, "Rollback of an unordered route")."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from migrator.bridge.config import BridgeConfig
from migrator.config import KafkaConnection
from migrator.cutover.coordinator import Coordinator
from migrator.cutover.state import State
from tests.cutover.harness import (
    Coord,
    KeepProducing,
    OldConsumer,
    await_exactly_once,
    gated_bridges,
    run_cli,
    wait_for,
    write_config,
)
from tests.fixtures.endpoint import ReceivedRequest, RecordingEndpoint, Reply
from tests.fixtures.kafka import KafkaKit, unique
from tests.fixtures.qstash import QStashServer
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(300)

SLOW_S = 2.5


class Uneven:
    """Refuses every 5th record the first time (QStash retries it 30 s later: a hole), takes
    SLOW_S to process every 7th (deliveries in flight at any moment); a record counts as
    processed when the endpoint answers 200."""

    def __init__(self) -> None:
        self.accepted: list[Coord] = []
        self.finished_at: list[float] = []
        self.refused: set[Coord] = set()
        self._lock = threading.Lock()

    def __call__(self, req: ReceivedRequest) -> Reply:
        h = req.headers
        coord = (h["kafka-topic"], int(h["kafka-partition"]), int(h["kafka-offset"]))
        if coord[2] % 5 == 3:
            with self._lock:
                if coord not in self.refused:
                    self.refused.add(coord)
                    return Reply(503, b"busy")
        if coord[2] % 7 == 0:
            time.sleep(SLOW_S)
        with self._lock:
            self.accepted.append(coord)
            self.finished_at.append(time.monotonic())
        return Reply(200)

    def coords(self) -> list[Coord]:
        with self._lock:
            return list(self.accepted)


def test_unordered_rollback_with_holes_and_deliveries_in_flight_is_exact_with_the_skip_list(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    server = qstash_server_factory(backoff_scale=1.0)
    topic = kafka.create_topic(unique("cut-unord"), partitions=2)
    group = unique("ledger")
    keeper = Uneven()
    endpoint = endpoint_factory(keeper)
    producer = KeepProducing(bootstrap, {topic: 2}, rate=100)
    out = tmp_path / "old.txt"
    old = OldConsumer(bootstrap, group, [topic], out)
    data = {
        "kafka": {"bootstrap_servers": bootstrap},
        "qstash": {"url": server.url, "token": server.token},
        "group": unique("mb"), "cutover_topic": unique("_cutover"),
        "routes": [{"topic": topic, "destinations": [{
            "kind": "publish-url", "url": endpoint.url, "retries": 3, "retry_delay": "30000",
            "replaces_group": group}]}],
        "batch": {"count": 20, "linger_ms": 5},
        "retry": {"initial_backoff": 0.05, "max_backoff": 0.5}, "shutdown_deadline": 10,
    }
    path = write_config(tmp_path / "bridge.yaml", data)
    cfg = BridgeConfig.model_validate(data)
    coord = Coordinator(cfg, KafkaConnection(bootstrap_servers=bootstrap),
                        qstash=server.connection, poll=0.2)
    resumed: OldConsumer | None = None
    try:
        wait_for(lambda: len(old.processed()) >= 80, lambda: f"old saw {len(old.processed())}")
        with gated_bridges(cfg, bootstrap, qstash=server.connection):
            coord.prepare(group)
            old.stop()
            coord.switch(group, watch=2.0, timeout=60.0)
            wait_for(lambda: len(keeper.coords()) >= 150 and len(keeper.refused) >= 10,
                     lambda: f"endpoint {len(keeper.coords())}, refused {len(keeper.refused)}",
                     timeout=60)
            started = time.monotonic()
            skip_file = tmp_path / "skip.json"
            r = run_cli("cutover", "rollback", group, "--config",
                        str(path), "--timeout", "60s", "--skip-file", str(skip_file))
            assert r.returncode == 0, r.stderr[-3000:]
            assert "Skip list" in r.stdout, r.stdout
            after_rollback = len(keeper.coords())
            state = coord.load(group)
            assert state.state is State.ROLLED_BACK
            # the route is unordered: the endpoint had records above the rollback point
            assert state.skip, state
            sources = {p.source for p in state.rollback}
            assert sources <= {"cancelled", "delivered", "bridge-committed", "handoff"}, sources
            # deliveries were in flight while the rollback ran and ended in a 200 after it began
            assert any(t > started for t in keeper.finished_at), "no delivery was in flight"
            skip = json.loads(skip_file.read_text())
            assert skip["group"] == group and skip["skip"][topic]
            time.sleep(3.0)
            assert len(keeper.coords()) == after_rollback, "delivered after the rollback"
        resumed = OldConsumer(bootstrap, group, [topic], out, skip=skip_file)
        time.sleep(2.0)
        producer.stop()
        ends = {(topic, p): e for p, e in kafka.end_offsets(topic, 2).items()}
        await_exactly_once(old.processed, keeper.coords, ends)
    finally:
        producer.stop()
        coord.close()
        old.kill()
        if resumed is not None:
            resumed.kill()
