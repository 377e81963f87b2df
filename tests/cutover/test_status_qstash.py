"""`cutover status` counts what QStash did with the group's messages since the hand-off:
delivered, still pending (a delayed destination), failed into the DLQ (an endpoint that always
refuses), read from the local QStash server's logs through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cutover.estate import HANDOFF, PARTS, Estate
from tests.cutover.harness import run_cli, wait_for
from tests.fixtures.endpoint import RecordingEndpoint, Reply
from tests.fixtures.kafka import KafkaKit
from tests.fixtures.qstash import QStashServer
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(180)


def test_status_counts_delivered_pending_and_failed_since_the_handoff(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    server = qstash_server_factory()
    healthy = endpoint_factory()
    delayed = endpoint_factory()
    failing = endpoint_factory(lambda _req: Reply(500, b"down"))
    est = Estate(kafka, kafka_stack.bootstrap_servers, tmp_path, [
        {"kind": "publish-url", "url": healthy.url},
        {"kind": "publish-url", "url": delayed.url, "delay": "1h"},
        {"kind": "publish-url", "url": failing.url, "retries": 0},
    ], server)
    after = (20 - HANDOFF) * PARTS  # records at and after the hand-off, per destination

    def status() -> dict[str, Any]:
        r = run_cli("cutover", "status", est.group, "--config", str(est.path), "--format", "json")
        assert r.returncode == 0, r.stderr[-2000:]
        return dict(json.loads(r.stdout)["groups"][0])

    try:
        before = status()
        assert before["qstash_since_handoff"] is None  # prepared: nothing handed off yet
        with est.switched():
            est.await_committed()
            seen: list[dict[str, Any]] = []

            def settled() -> bool:
                seen.append(status()["qstash_since_handoff"])
                return seen[-1] == {"delivered": after, "pending": after, "failed": after,
                                    "cancelled": 0}

            wait_for(settled, lambda: f"status said {seen[-1:]} (want {after} each)", timeout=60)
            text = run_cli("cutover", "status", est.group, "--config", str(est.path))
            assert (f"QStash since the hand-off: {after} delivered, {after} pending, "
                    f"{after} failed (DLQ), 0 cancelled") in text.stdout, text.stdout
            assert server.token not in text.stdout + text.stderr
        assert len(delayed.requests) == 0
        # QStash down: status still answers, saying why the counts are missing
        server.stop()
        down = run_cli("cutover", "status", est.group, "--config", str(est.path))
        assert down.returncode == 0, down.stderr
        assert "QStash since the hand-off: unknown (QStash at" in down.stdout, down.stdout
        assert "unreachable" in down.stdout and server.token not in down.stdout + down.stderr
    finally:
        est.close()
