"""Two operators: a second cutover command on a group another one is changing stops with one line
naming the holder (exit 14); a command killed with -9 does not block a rerun (its lease expires;
on the same machine the rerun takes over at once)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml

from migrator.config import KafkaConnection
from migrator.cutover.lease import Claim, holder
from migrator.kafka.state_log import LogEntry, StateLog
from tests.cutover.harness import (
    OldConsumer,
    run_cli,
    start_cli,
    wait_for,
    wait_said,
    write_config,
)
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(240)


def _claim(token: str, at: int, ttl: int = 10, **extra: object) -> LogEntry:
    return (f"lease:g:{token}", {"kind": "claim", "token": token, "owner": f"u@{token}",
                                 "host": "elsewhere", "pid": 1, "step": "switch", "at_ms": at,
                                 "expires_ms": at + ttl, **extra}, 0)


def _release(token: str) -> LogEntry:
    return (f"lease:g:{token}", {"kind": "release", "token": token}, 0)


def test_the_lease_fold_is_first_claim_wins_until_release_or_expiry() -> None:
    a, b, c = _claim("a", 0), _claim("b", 5), _claim("c", 12)
    assert holder([a], "g", 5) == Claim("a", "u@a", "elsewhere", 1, "switch", 0, 10)
    assert holder([a, b], "g", 6).token == "a"  # type: ignore[union-attr]  # b came too early
    assert holder([a, b, c], "g", 13).token == "c"  # type: ignore[union-attr]  # a had expired
    assert holder([a, b, _release("b")], "g", 6).token == "a"  # type: ignore[union-attr]
    assert holder([a, _release("a"), b], "g", 6).token == "b"  # type: ignore[union-attr]
    assert holder([a, _claim("a", 8)], "g", 15).token == "a"  # type: ignore[union-attr]  # renewed
    assert holder([a], "g", 10) is None  # expired
    assert holder([a, _claim("d", 3, supersedes="a")], "g", 4).token == "d"  # type: ignore[union-attr]
    assert holder([a, _claim("d", 3, supersedes="x")], "g", 4).token == "a"  # type: ignore[union-attr]
    assert holder([_claim("a", 0, group="h")], "other", 1) is None


def test_two_operators_on_one_group_and_a_killed_holder(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    topic = kafka.create_topic(unique("cut-lease"), partitions=1)
    kafka.produce(topic, [Rec(f"v{i}") for i in range(10)])
    group = unique("lease")
    cfg = str(write_config(tmp_path / "bridge.yaml", {
        "kafka": {"bootstrap_servers": bootstrap}, "group": unique("mb"),
        "cutover_topic": unique("_cutover"),
        "routes": [{"topic": topic, "destinations": [
            {"kind": "direct-http", "url": endpoint.url, "replaces_group": group}]}]}))
    old = OldConsumer(bootstrap, group, [topic], tmp_path / "old.txt")
    first: subprocess.Popen[str] | None = None
    try:
        assert run_cli("cutover", "prepare", group, "--config", cfg).returncode == 0
        # operator 1: a switch that waits at the fence (the old consumer still runs)
        err = tmp_path / "first.err"
        first = start_cli(err, "cutover", "switch", group, "--config", cfg, "--watch", "2s",
                          "--timeout", "300s", "--without-bridge", "--lease-ttl", "60s")
        wait_said(err, "Stop every consumer")
        # operator 2: refused, one line naming the holder, nothing changed
        for step in (["rollback", group], ["prepare", group], ["switch", group, "--watch", "1s"]):
            second = run_cli("cutover", *step, "--config", cfg)
            assert second.returncode == 14, (step, second.stderr)
            lines = [x for x in second.stderr.splitlines() if x.strip()]
            assert len(lines) == 1 and lines[0].startswith("Error: "), second.stderr
            assert "`switch` run by" in lines[0] and f"pid {first.pid}" in lines[0], lines[0]
            assert "Traceback" not in second.stderr
        # operator 1 is killed with -9 mid-step; its lease outlives it (60 s) but this machine
        # sees its process is gone: the rerun takes over and finishes the switch
        first.kill()
        first.wait(30)
        old.stop()
        rerun = run_cli("cutover", "switch", group, "--config", cfg, "--watch", "2s",
                        "--timeout", "60s", "--without-bridge")
        assert rerun.returncode == 0, rerun.stderr
        status = run_cli("cutover", "status", group, "--config", cfg, "--format", "json")
        assert '"state": "switched"' in status.stdout, status.stdout
        # the finished command released its lease
        state_topic = yaml.safe_load(Path(cfg).read_text())["cutover_topic"]
        log = StateLog(KafkaConnection(bootstrap_servers=bootstrap), state_topic)
        try:
            assert holder(log.read(), group, int(time.time() * 1000)) is None
            # an operator on another machine holds it (its process cannot be checked from
            # here): refused until its lease expires, then the rerun goes ahead
            now = int(time.time() * 1000)
            log.append(f"lease:{group}:foreign", {
                "kind": "claim", "token": "foreign", "owner": "ops@other-machine",
                "host": "other-machine", "pid": 1, "step": "rollback", "at_ms": now,
                "expires_ms": now + 20_000})
        finally:
            log.close()
        refused = run_cli("cutover", "rollback", group, "--config", cfg)
        assert refused.returncode == 14 and "ops@other-machine pid 1" in refused.stderr, \
            refused.stderr
        tries: list[subprocess.CompletedProcess[str]] = []

        def goes_ahead() -> bool:
            tries.append(run_cli("cutover", "rollback", group, "--config", cfg))
            return tries[-1].returncode == 0

        wait_for(goes_ahead, lambda: f"rollback still refused: {tries[-1].stderr}", timeout=60)
    finally:
        if first is not None and first.poll() is None:
            first.kill()
        old.kill()
