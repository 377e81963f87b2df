"""Rollback after part of the traffic was delivered through QStash while the rest is still held
in QStash (the endpoint stopped accepting: FIFO queues blocked on a retrying head): old + new
is every offset exactly once, after an immediate re-switch and after the old consumer resumes.

The route is ordered (one batch per partition in flight, FIFO queue per partition), so what the
endpoint got on a partition is a prefix of it: the rollback point is exact. An unordered route
can have records delivered above the first cancelled one (docs/cutover.md)."""

from __future__ import annotations

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
    wait_for,
)
from tests.fixtures.endpoint import ReceivedRequest, RecordingEndpoint, Reply
from tests.fixtures.kafka import KafkaKit, unique
from tests.fixtures.qstash import QStashServer
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(240)


class Gatekeeper:
    """An endpoint's answers: 200 (recording the record as processed) while open, else 503."""

    def __init__(self) -> None:
        self.open = True
        self.accepted: list[Coord] = []
        self.refused = 0
        self._lock = threading.Lock()

    def __call__(self, req: ReceivedRequest) -> Reply:
        h = req.headers
        with self._lock:
            if not self.open:
                self.refused += 1
                return Reply(503, b"busy")
            self.accepted.append((h["kafka-topic"], int(h["kafka-partition"]),
                                  int(h["kafka-offset"])))
        return Reply(200)

    def coords(self) -> list[Coord]:
        with self._lock:
            return list(self.accepted)


def test_rollback_with_messages_still_in_qstash_then_reswitch_then_old_consumer_resumes(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    server = qstash_server_factory(backoff_scale=1.0)
    topic = kafka.create_topic(unique("cut-rb"), partitions=2)
    group = unique("ledger")
    keeper = Gatekeeper()
    endpoint = endpoint_factory(keeper)
    producer = KeepProducing(bootstrap, {topic: 2}, rate=100)
    old_runs: list[OldConsumer] = [OldConsumer(bootstrap, group, [topic], tmp_path / "old.txt")]

    def old_processed() -> list[Coord]:
        return old_runs[0].processed()  # every run appends to the same file

    cfg = BridgeConfig.model_validate({
        "kafka": {"bootstrap_servers": bootstrap},
        "qstash": {"url": server.url, "token": server.token},
        "group": unique("mb"), "cutover_topic": unique("_cutover"),
        "routes": [{"topic": topic, "ordered": True, "destinations": [{
            "kind": "enqueue-queue", "queue": "ledger-{partition}", "url": endpoint.url,
            "retries": 5, "retry_delay": "30000", "replaces_group": group}]}],
        "batch": {"count": 20, "linger_ms": 5},
        "retry": {"initial_backoff": 0.05, "max_backoff": 0.5}, "shutdown_deadline": 10,
    })
    qstash = server.connection
    coord = Coordinator(cfg, KafkaConnection(bootstrap_servers=bootstrap), qstash=qstash, poll=0.2)
    try:
        wait_for(lambda: len(old_processed()) >= 80, lambda: f"old saw {len(old_processed())}")
        with gated_bridges(cfg, bootstrap, qstash=qstash) as gate:
            coord.prepare(group)
            old_runs[0].stop()
            coord.switch(group, watch=2.0, timeout=60.0)
            wait_for(lambda: len(keeper.coords()) >= 100, lambda: f"endpoint {len(keeper.coords())}")
            keeper.open = False  # from now on QStash holds what it accepts (queues blocked)
            wait_for(lambda: keeper.refused >= 2, lambda: f"refused {keeper.refused}")
            time.sleep(2.0)
            delivered_before = len(keeper.coords())
            state = coord.rollback(group, timeout=60.0)
            assert state.state is State.ROLLED_BACK
            assert state.cancelled and state.cancelled >= 100, state.cancelled
            assert gate.modes()[group] is None
            # nothing more reaches the endpoint for this group once rolled back
            keeper.open = True
            time.sleep(1.5)
            assert len(keeper.coords()) == delivered_before
            rolled = state.rollback_map()
            assert all(o >= 0 for o in rolled.values())
            # 1) re-switch at once (old consumer not restarted): the hand-off is the rollback
            # point, and the records QStash cancelled are delivered again (new dedup ids)
            coord.prepare(group)
            again = coord.switch(group, watch=2.0, timeout=60.0)
            assert again.handoff_map() == rolled
            assert again.switches == 2
            time.sleep(2.0)
            keeper.open = False
            wait_for(lambda: keeper.refused >= 4, lambda: f"refused {keeper.refused}")
            time.sleep(2.0)
            # 2) roll back again and let the old consumer resume
            coord.rollback(group, timeout=60.0)
            old_runs.append(OldConsumer(bootstrap, group, [topic], tmp_path / "old.txt"))
            time.sleep(2.0)
            producer.stop()
            ends = {(topic, p): e for p, e in kafka.end_offsets(topic, 2).items()}
            await_exactly_once(old_processed, keeper.coords, ends)
            # ordered route, FIFO queue per partition: the endpoint saw each partition in offset
            # order, across both hand-offs (each began right after the last record it had got)
            for part in range(2):
                seen = [o for _t, p, o in keeper.coords() if p == part]
                assert seen == sorted(seen), f"partition {part} out of order: {seen[:50]}"
        history = [h.state for h in coord.load(group).history]
        assert history == [State.PREPARED, State.SWITCHING, State.SWITCHED, State.ROLLING_BACK,
                           State.ROLLING_BACK, State.ROLLED_BACK, State.PREPARED,
                           State.SWITCHING, State.SWITCHED, State.ROLLING_BACK,
                           State.ROLLING_BACK, State.ROLLED_BACK]
    finally:
        producer.stop()
        coord.close()
        for run in old_runs:
            run.kill()
