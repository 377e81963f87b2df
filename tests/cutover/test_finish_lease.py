"""`cutover finish` takes every replaced group's lease: while another cutover command holds one,
it stops with exit 14 naming the holder and deletes nothing (even with --delete); once the
lease is free it goes ahead and releases what it took."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from migrator.config import KafkaConnection
from migrator.cutover.lease import holder
from migrator.kafka.admin import KafkaAdmin
from migrator.kafka.state_log import StateLog
from tests.cutover.harness import OldConsumer, run_cli, wait_for, write_config
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(240)


def test_finish_refuses_a_group_whose_lease_another_command_holds(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    topic = kafka.create_topic(unique("cut-finlease"), partitions=1)
    kafka.produce(topic, [Rec(f"v{i}") for i in range(5)])
    group = unique("finlease")
    state_topic = unique("_cutover")
    cfg = str(write_config(tmp_path / "bridge.yaml", {
        "kafka": {"bootstrap_servers": bootstrap}, "group": unique("mb"),
        "cutover_topic": state_topic,
        "routes": [{"topic": topic, "destinations": [
            {"kind": "direct-http", "url": endpoint.url, "replaces_group": group}]}]}))
    old = OldConsumer(bootstrap, group, [topic], tmp_path / "old.txt")
    try:
        wait_for(lambda: len(old.processed()) == 5,
                 lambda: f"old consumer processed {len(old.processed())} of 5")
        old.stop()
    finally:
        old.kill()
    assert run_cli("cutover", "prepare", group, "--config", cfg).returncode == 0
    connection = KafkaConnection(bootstrap_servers=bootstrap)
    log = StateLog(connection, state_topic)
    admin = KafkaAdmin(connection)
    try:
        now = int(time.time() * 1000)
        log.append(f"lease:{group}:foreign", {
            "kind": "claim", "token": "foreign", "owner": "ops@other-machine",
            "host": "other-machine", "pid": 1, "step": "switch", "at_ms": now,
            "expires_ms": now + 120_000})
        for extra in ([], ["--delete", "--allow-destructive"]):
            r = run_cli("cutover", "finish", "--config", cfg, "--window", "1s", *extra)
            lines = [x for x in r.stderr.splitlines() if x.strip()]
            assert r.returncode == 14, (extra, r.stdout, r.stderr)
            assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
            assert "`switch` run by ops@other-machine pid 1" in lines[0], lines[0]
            assert not r.stdout.strip(), r.stdout  # refused before checking anything
        assert topic in admin.describe_topics([topic])
        assert holder(log.read(), group, int(time.time() * 1000)).token == "foreign"  # type: ignore[union-attr]
        # the other command finishes: finish goes ahead (the group is only prepared: exit 1,
        # outstanding) and releases the lease it took
        log.append(f"lease:{group}:foreign", {"kind": "release", "token": "foreign"})
        r = run_cli("cutover", "finish", "--config", cfg, "--window", "1s")
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"group {group!r} is prepared, not switched" in r.stdout, r.stdout
        assert holder(log.read(), group, int(time.time() * 1000)) is None
        claims = [doc for key, doc, _ in log.read()
                  if key.startswith(f"lease:{group}:") and doc.get("step") == "finish"]
        assert claims, "finish took no lease"
    finally:
        admin.close()
        log.close()
