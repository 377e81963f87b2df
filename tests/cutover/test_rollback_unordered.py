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

from migrator.cutover.state import State
from tests.cutover.harness import (
    Coord,
    gated_bridges,
    rollback_case,
    run_cli,
    wait_for,
)
from tests.fixtures.endpoint import ReceivedRequest, RecordingEndpoint, Reply
from tests.fixtures.kafka import KafkaKit
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
    keeper = Uneven()
    endpoint = endpoint_factory(keeper)
    with rollback_case(kafka, bootstrap, server, endpoint.url, tmp_path, name="cut-unord",
                       retries=3, retry_delay="30000") as case:
        topic, group, path, coord = case.topic, case.group, case.path, case.coord
        with gated_bridges(case.cfg, bootstrap, qstash=server.connection):
            coord.prepare(group)
            case.old.stop()
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
        case.resume_and_check(skip_file, keeper.coords)
