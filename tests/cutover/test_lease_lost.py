"""A holder that loses its lease stops. A `switch` paused (SIGSTOP: a stalled VM, a GC pause, a
laptop lid) past its lease's time to live while it waits at the fence is overtaken by a second
operator whose switch completes; resumed, the first refuses its next write (it would have
recorded a stale hand-off over the second's and set the bridge group's offsets again) and exits
16 with one line saying so; the group stays as the second left it, and a rerun completes. The
same with the holder cut off from Kafka (a fault proxy hangs its connections) instead of
paused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from migrator.config import KafkaConnection
from migrator.cutover.lease import holder
from migrator.kafka.group_offsets import GroupOffsetAdmin
from migrator.kafka.state_log import StateLog
from tests.chaos.test_broker_network_faults import ProxiedBroker, proxied_broker  # noqa: F401
from tests.cutover.harness import (
    OldConsumer,
    run_cli,
    start_cli,
    wait_for,
    wait_lease_expired,
    wait_said,
    write_config,
)
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.faultproxy import HANG, PASS
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(300)


def test_a_paused_holder_overtaken_after_expiry_refuses_its_next_write_and_exits_16(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    topic = kafka.create_topic(unique("cut-lost"), partitions=1)
    kafka.produce(topic, [Rec(f"v{i}") for i in range(10)])
    group = unique("lost")
    state_topic = unique("_cutover")
    cfg = str(write_config(tmp_path / "bridge.yaml", {
        "kafka": {"bootstrap_servers": bootstrap}, "group": unique("mb"),
        "cutover_topic": state_topic,
        "routes": [{"topic": topic, "destinations": [
            {"kind": "direct-http", "url": endpoint.url, "replaces_group": group}]}]}))
    old = OldConsumer(bootstrap, group, [topic], tmp_path / "old.txt")
    connection = KafkaConnection(bootstrap_servers=bootstrap)
    log = StateLog(connection, state_topic)
    first: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: len(old.processed()) == 10,
                 lambda: f"old consumer processed {len(old.processed())} of 10")
        assert run_cli("cutover", "prepare", group, "--config", cfg).returncode == 0
        err = tmp_path / "first.err"
        first = start_cli(err, "cutover", "switch", group, "--config", cfg, "--watch", "2s",
                          "--timeout", "300s", "--without-bridge", "--lease-ttl", "6s")
        wait_said(err, "Stop every consumer")
        os.kill(first.pid, signal.SIGSTOP)  # its renewals stop; the lease runs out
        wait_lease_expired(log, group, timeout=60)
        # operator 2 stops the old consumer and switches the group: it gets the lease
        old.stop()
        second = run_cli("cutover", "switch", group, "--config", cfg, "--watch", "2s",
                         "--timeout", "60s", "--without-bridge")
        assert second.returncode == 0, second.stderr
        before = run_cli("cutover", "history", group, "--config", cfg)
        assert before.returncode == 0, before.stderr
        switched = json.loads(before.stdout.splitlines()[-1])
        assert switched["state"] == "switched", before.stdout
        # operator 1 wakes up: the fence is quiet now, but the lease is gone
        os.kill(first.pid, signal.SIGCONT)
        rc = first.wait(120)
        said = err.read_text()
        lines = [x for x in said.splitlines() if x.strip()]
        assert rc == 16, said
        assert [x for x in lines if "lease" in x] == lines[-1:], said  # one line about it
        assert lines[-1].startswith("Error: lost the lease on group"), said
        assert "Done by this command: nothing" in lines[-1], lines[-1]
        assert f"Rerun `migrator cutover switch {group}`" in lines[-1], lines[-1]
        assert "Traceback" not in said
        # nothing of the first switch's landed: the history is the second's, the bridge group
        # starts where the second handed off
        after = run_cli("cutover", "history", group, "--config", cfg)
        assert after.stdout == before.stdout, (before.stdout, after.stdout)
        status = json.loads(run_cli("cutover", "status", group, "--config", cfg,
                                    "--format", "json").stdout)["groups"][0]
        assert status["state"] == "switched" and [p["offset"] for p in status["handoff"]] == [10]
        admin = GroupOffsetAdmin(connection, timeout=30.0)
        try:
            bgroup = status["bridge_group"]["name"]
            assert admin.list_group_offsets([bgroup]).get(bgroup) == {(topic, 0): 10}
        finally:
            admin.close()
        # the rerun the message asks for completes (here: nothing left to do)
        rerun = run_cli("cutover", "switch", group, "--config", cfg, "--watch", "1s",
                        "--without-bridge")
        assert rerun.returncode == 0 and "already switched" in rerun.stderr, rerun.stderr
        assert holder(log.read(), group, int(time.time() * 1000)) is None
    finally:
        if first is not None and first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
            first.wait(30)
        old.kill()
        log.close()


def test_a_holder_cut_off_from_kafka_is_overtaken_and_exits_16_when_the_link_returns(
    proxied_broker: ProxiedBroker,  # noqa: F811  # the chaos tests' broker behind a proxy
    endpoint: RecordingEndpoint, tmp_path: Path,
) -> None:
    """The first operator's every Kafka connection crosses a fault proxy (its own broker,
    advertised at the proxy); the proxy hangs them while it waits at the fence, so its renewals
    fail and its lease runs out; the second operator (a direct listener) switches the group; the
    link comes back within the first's request timeout, its fence completes, and it refuses to
    record its hand-off: exit 16."""
    proxy, direct = proxied_broker.proxy, proxied_broker.direct
    kafka = KafkaKit(direct, None)
    topic = kafka.create_topic(unique("cut-lost-net"), partitions=1)
    kafka.produce(topic, [Rec(f"v{i}") for i in range(10)])
    group = unique("lost-net")
    state_topic = unique("_cutover")
    body = {"group": unique("mb"), "cutover_topic": state_topic,
            "routes": [{"topic": topic, "destinations": [
                {"kind": "direct-http", "url": endpoint.url, "replaces_group": group}]}]}
    via_proxy = str(write_config(tmp_path / "proxied.yaml", {
        **body, "kafka": {"bootstrap_servers": proxy.address}}))
    cfg = str(write_config(tmp_path / "direct.yaml", {
        **body, "kafka": {"bootstrap_servers": direct}}))
    old = OldConsumer(direct, group, [topic], tmp_path / "old.txt")
    log = StateLog(KafkaConnection(bootstrap_servers=direct), state_topic)
    first: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: len(old.processed()) == 10,
                 lambda: f"old consumer processed {len(old.processed())} of 10")
        assert run_cli("cutover", "prepare", group, "--config", cfg).returncode == 0
        err = tmp_path / "first.err"
        first = start_cli(err, "cutover", "switch", group, "--config", via_proxy, "--watch",
                          "2s", "--timeout", "300s", "--without-bridge", "--lease-ttl", "4s")
        wait_said(err, "Stop every consumer")
        proxy.set(HANG)
        cut_at = time.monotonic()
        wait_lease_expired(log, group, timeout=30)
        old.stop()
        second = run_cli("cutover", "switch", group, "--config", cfg, "--watch", "1s",
                         "--timeout", "60s", "--without-bridge")
        assert second.returncode == 0, second.stderr
        assert first.poll() is None, err.read_text()  # still waiting on its hung requests
        before = run_cli("cutover", "history", group, "--config", cfg).stdout
        proxy.set(PASS)
        cut_for = time.monotonic() - cut_at  # must stay below its requests' 30 s timeout
        rc = first.wait(120)
        said = err.read_text()
        assert rc == 16, f"link cut for {cut_for:.1f}s: {said}"
        last = [x for x in said.splitlines() if x.strip()][-1]
        assert last.startswith("Error: lost the lease on group"), said
        assert "Done by this command: nothing" in last, last
        assert "could not renew the lease" in said, said  # the renewals did fail
        assert run_cli("cutover", "history", group, "--config", cfg).stdout == before
        rerun = run_cli("cutover", "switch", group, "--config", via_proxy, "--watch", "1s",
                        "--without-bridge")
        assert rerun.returncode == 0 and "already switched" in rerun.stderr, rerun.stderr
    finally:
        proxy.set(PASS)
        if first is not None and first.poll() is None:
            first.kill()
            first.wait(30)
        old.kill()
        log.close()


def test_a_rollback_that_loses_its_lease_mid_step_is_finished_by_the_next_command(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    """A rollback that recorded ``rolling_back`` and waits for a member to leave the bridge group
    is paused past its lease; the second operator's rollback finishes the step (it resumes from
    the recorded state); resumed, the first refuses to record its own rollback offsets, exits 16
    saying it had recorded rolling_back, and the group is rolled back once, as the second left
    it."""
    bootstrap = kafka_stack.bootstrap_servers
    topic = kafka.create_topic(unique("cut-lost-rb"), partitions=1)
    kafka.produce(topic, [Rec(f"v{i}") for i in range(10)])
    group = unique("lost-rb")
    state_topic = unique("_cutover")
    cfg = str(write_config(tmp_path / "bridge.yaml", {
        "kafka": {"bootstrap_servers": bootstrap}, "group": unique("mb"),
        "cutover_topic": state_topic,
        "routes": [{"topic": topic, "destinations": [
            {"kind": "direct-http", "url": endpoint.url, "replaces_group": group}]}]}))
    old = OldConsumer(bootstrap, group, [topic], tmp_path / "old.txt")
    wait_for(lambda: len(old.processed()) == 10,
             lambda: f"old consumer processed {len(old.processed())} of 10")
    old.stop()
    assert run_cli("cutover", "prepare", group, "--config", cfg).returncode == 0
    switched = run_cli("cutover", "switch", group, "--config", cfg, "--watch", "1s",
                       "--without-bridge")
    assert switched.returncode == 0, switched.stderr
    status = json.loads(run_cli("cutover", "status", group, "--config", cfg, "--format",
                                "json").stdout)["groups"][0]
    bgroup = status["bridge_group"]["name"]
    # a member in the bridge group (a bridge of an older version) keeps the rollback waiting
    straggler = OldConsumer(bootstrap, bgroup, [topic], tmp_path / "straggler.txt")
    first: subprocess.Popen[str] | None = None
    try:
        err = tmp_path / "first.err"
        first = start_cli(err, "cutover", "rollback", group, "--config", cfg, "--timeout",
                          "300s", "--lease-ttl", "6s")
        wait_said(err, "waiting for the bridges to drain")
        os.kill(first.pid, signal.SIGSTOP)
        log = StateLog(KafkaConnection(bootstrap_servers=bootstrap), state_topic)
        try:
            wait_lease_expired(log, group, timeout=60)
        finally:
            log.close()
        straggler.stop()
        second = run_cli("cutover", "rollback", group, "--config", cfg, "--timeout", "60s")
        assert second.returncode == 0, second.stderr
        before = run_cli("cutover", "history", group, "--config", cfg).stdout
        states = [json.loads(x)["state"] for x in before.splitlines()]
        assert states[-3:] == ["rolling_back", "rolling_back", "rolled_back"], states
        os.kill(first.pid, signal.SIGCONT)
        rc = first.wait(120)
        said = err.read_text()
        last = [x for x in said.splitlines() if x.strip()][-1]
        assert rc == 16, said
        assert last.startswith("Error: lost the lease on group"), said
        assert "Done by this command: recorded rolling_back." in last, last
        assert run_cli("cutover", "history", group, "--config", cfg).stdout == before
        after = json.loads(run_cli("cutover", "status", group, "--config", cfg, "--format",
                                   "json").stdout)["groups"][0]
        assert after["state"] == "rolled_back"
        assert [p["offset"] for p in after["rollback"]] == [10], after["rollback"]
        rerun = run_cli("cutover", "rollback", group, "--config", cfg)
        assert rerun.returncode == 0 and "already rolled back" in rerun.stderr, rerun.stderr
    finally:
        if first is not None and first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
            first.wait(30)
        straggler.kill()
