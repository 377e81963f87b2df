"""Rollback against a QStash whose bulk cancel is asynchronous, as the real one's is: the
``DELETE /v2/messages?label=...`` is answered at once, the messages are ``CANCEL_REQUESTED``, and
the cancel takes effect seconds later (the local server's ``--cancel-delay-ms``). Meanwhile a
retry that falls due is still delivered (``DELIVERED`` after ``CANCEL_REQUESTED``), and a
delivery in flight when the cancel takes effect is decided at the end of its call. The rollback
must wait for all of that (settle) before deciding where the old consumers resume: old + new is
every offset exactly once (docs/cutover.md, "Rollback")."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
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

CANCEL_DELAY_MS = 4000
SLOW_S = 5.0  # longer than the cancel's delay: in flight when it takes effect


class Door:
    """Takes every record while open. Shut: refuses everything (QStash retries it every second).
    Reopened: still refuses every record with offset % 4 == 1 (those stay retrying until the
    cancel takes effect) and takes SLOW_S over every 7th."""

    def __init__(self) -> None:
        self.state = "open"
        self.accepted: list[Coord] = []
        self.refused: set[Coord] = set()
        self.slow: list[tuple[float, float]] = []  # (start, end) of slow calls, epoch ms
        self._lock = threading.Lock()

    def __call__(self, req: ReceivedRequest) -> Reply:
        h = req.headers
        coord = (h["kafka-topic"], int(h["kafka-partition"]), int(h["kafka-offset"]))
        with self._lock:
            state = self.state
            if state == "shut" or (state == "reopened" and coord[2] % 4 == 1):
                self.refused.add(coord)
                return Reply(503, b"busy")
        if state == "reopened" and coord[2] % 7 == 0:
            start = time.time() * 1000
            time.sleep(SLOW_S)
            with self._lock:
                self.slow.append((start, time.time() * 1000))
        with self._lock:
            self.accepted.append(coord)
        return Reply(200)

    def coords(self) -> list[Coord]:
        with self._lock:
            return list(self.accepted)


def _histories(server: QStashServer) -> dict[str, list[str]]:
    """Every message's states, oldest first, from the server's logs (all pages)."""
    out: dict[str, list[str]] = {}
    cursor: str | None = None
    with httpx.Client(headers=server.headers, timeout=30) as http:
        while True:
            params: dict[str, Any] = {"count": 100, **({"cursor": cursor} if cursor else {})}
            page = http.get(f"{server.url}/v2/logs", params=params).json()
            for entry in page["logs"]:
                out.setdefault(entry["messageId"], []).insert(0, entry["state"])
            cursor = page.get("cursor")
            if not cursor:
                return out


def _cancel_requested(server: QStashServer) -> bool:
    r = httpx.get(f"{server.url}/v2/logs", params={"state": "CANCEL_REQUESTED", "count": 1},
                  headers=server.headers)
    return bool(r.json()["logs"])


def test_rollback_with_an_asynchronous_cancel_waits_for_what_qstash_still_delivers(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    monkeypatch.setenv("QSTASH_SERVER_CANCEL_DELAY_MS", str(CANCEL_DELAY_MS))
    server = qstash_server_factory(backoff_scale=1.0)  # its own process, not the shared one
    door = Door()
    endpoint = endpoint_factory(door)
    with rollback_case(kafka, bootstrap, server, endpoint.url, tmp_path, name="cut-async",
                       retries=100, retry_delay="1000") as case:
        group, path, coord = case.group, case.path, case.coord
        with gated_bridges(case.cfg, bootstrap, qstash=server.connection):
            coord.prepare(group)
            case.old.stop()
            coord.switch(group, watch=2.0, timeout=60.0)
            wait_for(lambda: len(door.coords()) >= 100,
                     lambda: f"endpoint {len(door.coords())}", timeout=60)
            door.state = "shut"  # QStash holds what follows, retrying every second
            wait_for(lambda: len(door.refused) >= 150, lambda: f"refused {len(door.refused)}",
                     timeout=60)
            skip_file = tmp_path / "skip.json"
            result: list[Any] = []
            rollback = threading.Thread(target=lambda: result.append(run_cli(
                "cutover", "rollback", group, "--config", str(path), "--timeout", "90s",
                "--skip-file", str(skip_file), timeout=180)), daemon=True)
            rollback.start()
            # the cancel was answered and is pending: the endpoint takes records again, so
            # retries that fall due before the cancel takes effect are delivered
            wait_for(lambda: _cancel_requested(server) or not rollback.is_alive(),
                     lambda: "no CANCEL_REQUESTED logged", timeout=120)
            door.state = "reopened"
            rollback.join(180)
            assert result, "the rollback command did not finish"
            r = result[0]
            assert r.returncode == 0, r.stderr[-3000:]
            after_rollback = len(door.coords())
            state = coord.load(group)
            assert state.state is State.ROLLED_BACK
            time.sleep(3.0)
            assert len(door.coords()) == after_rollback, "delivered after the rollback"
        case.resume_and_check(skip_file, door.coords)
        histories = _histories(server)
        asked = [h for h in histories.values() if "CANCEL_REQUESTED" in h]
        late = [h for h in asked if h[-1] == "DELIVERED"
                and h.index("CANCEL_REQUESTED") < h.index("DELIVERED")]
        cancelled = [h for h in asked if h[-1] == "CANCELED"]
        # the asynchronous cancel was exercised: records delivered after it was answered
        assert late and cancelled, (len(asked), len(late), len(cancelled))
        actions = httpx.get(f"{server.url}/v2/bulkActions", headers=server.headers).json()
        took_effect = actions["bulkActions"][0]["completedAt"]
        spanning = [c for c in door.slow if c[0] < took_effect < c[1]]
        assert spanning, f"no delivery was in flight when the cancel took effect: {door.slow}"
        print(f"\ncancel matched {len(asked)}: {len(late)} delivered after CANCEL_REQUESTED, "
              f"{len(cancelled)} cancelled, {len(spanning)} in flight as it took effect; skip list "
              f"{sum(b - a + 1 for s in state.skip for a, b in s.ranges)} record(s); "
              f"rollback said: {r.stdout.strip().splitlines()[:3]}")
        assert json.loads(skip_file.read_text())["group"] == group
