"""A switch killed in the middle is finished by running it again, and exactness holds."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrator.bridge.config import load_bridge_config
from migrator.config import KafkaConnection
from migrator.cutover.coordinator import Coordinator
from migrator.cutover.state import State
from migrator.cutover.store import parse_states
from migrator.errors import KafkaAuthError
from migrator.kafka.group_offsets import GroupOffsetAdmin
from migrator.kafka.state_log import StateTail
from tests.bridge.harness import BridgeProcess
from tests.cutover.harness import (
    ROOT,
    KeepProducing,
    OldConsumer,
    await_exactly_once,
    endpoint_coords,
    gated_bridges,
    run_cli,
    wait_for,
    write_config,
)
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.qstash import QStashServer
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(180)


def _config(tmp_path: Path, bootstrap: str, topic: str, destination: dict[str, Any], *,
            ordered: bool = False, **settings: Any) -> Path:
    """A bridge.yaml with one route, on ``topic`` to ``destination`` (which replaces a group), a
    fresh bridge group and cutover topic; ``settings``: more top-level keys, or those replaced."""
    route: dict[str, Any] = {"topic": topic, "destinations": [destination]}
    if ordered:
        route["ordered"] = True
    return write_config(tmp_path / "bridge.yaml", {
        "kafka": {"bootstrap_servers": bootstrap}, "group": unique("mb"),
        "cutover_topic": unique("_cutover"), "routes": [route], **settings})


def _direct(endpoint: RecordingEndpoint, group: str) -> dict[str, Any]:
    return {"kind": "direct-http", "url": endpoint.url, "replaces_group": group}


class Crash(BaseException):
    """What a kill looks like to the code after the crash point: nothing more runs."""


class CrashingAdmin(GroupOffsetAdmin):
    """Dies in ``alter_group_offsets``, before or after Kafka applied it."""

    def __init__(self, connection: KafkaConnection, *, after: bool) -> None:
        super().__init__(connection)
        self.after = after

    def alter_group_offsets(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        if self.after:
            super().alter_group_offsets(group, offsets)
        raise Crash(f"killed while handing off to {group}")


@pytest.mark.parametrize("after", [False, True], ids=["before-alter", "after-alter"])
def test_a_switch_that_dies_during_the_hand_off_is_finished_by_a_rerun(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint, tmp_path: Path,
    after: bool,
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    topic = kafka.create_topic(unique("cut-crash"), partitions=2)
    group = unique("crashy")
    kafka.produce(topic, [])
    kafka.commit_group(group, {(topic, 0): 0, (topic, 1): 0})
    kafka.produce(topic, [Rec(f"v{i}", partition=i % 2) for i in range(40)])
    kafka.commit_group(group, {(topic, 0): 7, (topic, 1): 12})
    cfg_path = _config(tmp_path, bootstrap, topic, _direct(endpoint, group))
    cfg = load_bridge_config(cfg_path)
    conn = KafkaConnection(bootstrap_servers=bootstrap)
    first = Coordinator(cfg, conn, admin=CrashingAdmin(conn, after=after), poll=0.2)
    first.prepare(group)
    with pytest.raises(Crash):
        first.switch(group, watch=1.0, timeout=30.0, require_bridge=False)
    first.close()
    second = Coordinator(cfg, conn, poll=0.2)
    assert second.load(group).state is State.SWITCHING
    state = second.switch(group, watch=1.0, timeout=30.0, require_bridge=False)
    assert state.state is State.SWITCHED
    assert state.handoff_map() == {(topic, 0): 7, (topic, 1): 12}
    assert state.switches == 1
    bridge_group = state.bridge_group
    assert second.admin.list_group_offsets([bridge_group])[bridge_group] == {
        (topic, 0): 7, (topic, 1): 12}
    second.close()


class RefusingAdmin(GroupOffsetAdmin):
    """Kafka's answer to a principal without the ACL to alter a group's offsets (the real
    refusal is mapped by GroupOffsetAdmin._alter_error; this stands in for an authorizer)."""

    def alter_group_offsets(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        raise KafkaAuthError(f"Kafka refused altering the committed offsets of group {group!r}: "
                             "Group authorization failed; nothing was changed.")


def test_a_switch_refused_by_kafka_acls_leaves_the_group_prepared(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint, tmp_path: Path,
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    topic = kafka.create_topic(unique("cut-acl"), partitions=1)
    group = unique("acl")
    kafka.produce(topic, [Rec("v")])
    kafka.commit_group(group, {(topic, 0): 1})
    cfg = load_bridge_config(_config(tmp_path, bootstrap, topic, _direct(endpoint, group)))
    conn = KafkaConnection(bootstrap_servers=bootstrap)
    coord = Coordinator(cfg, conn, admin=RefusingAdmin(conn), poll=0.2)
    coord.prepare(group)
    with pytest.raises(KafkaAuthError, match="Group authorization failed"):
        coord.switch(group, watch=1.0, timeout=30.0, require_bridge=False)
    state = coord.load(group)
    assert state.state is State.PREPARED and "refused" in state.note
    bridge_group = state.bridge_group
    assert coord.admin.list_group_offsets([bridge_group]).get(bridge_group, {}) == {}
    coord.close()


def test_a_rollback_that_dies_while_setting_the_old_offsets_is_finished_by_a_rerun(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint, tmp_path: Path,
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    topic = kafka.create_topic(unique("cut-rbcrash"), partitions=2)
    group = unique("undo")
    kafka.produce(topic, [Rec(f"v{i}", partition=i % 2) for i in range(40)])
    kafka.commit_group(group, {(topic, 0): 5, (topic, 1): 9})
    cfg_path = _config(tmp_path, bootstrap, topic, _direct(endpoint, group))
    cfg = load_bridge_config(cfg_path)
    conn = KafkaConnection(bootstrap_servers=bootstrap)
    coord = Coordinator(cfg, conn, poll=0.2)
    coord.prepare(group)
    switched = coord.switch(group, watch=1.0, timeout=30.0, require_bridge=False)
    # the bridge delivered up to here before the rollback stopped it
    kafka.commit_group(switched.bridge_group, {(topic, 0): 12, (topic, 1): 9})
    crashing = Coordinator(cfg, conn, admin=CrashingAdmin(conn, after=False), poll=0.2)
    with pytest.raises(Crash):
        crashing.rollback(group, timeout=30.0)
    crashing.close()
    half = coord.load(group)
    assert half.state is State.ROLLING_BACK and half.rollback_map() == {(topic, 0): 12, (topic, 1): 9}
    assert coord.admin.list_group_offsets([group])[group] == {(topic, 0): 5, (topic, 1): 9}
    done = coord.rollback(group, timeout=30.0)
    assert done.state is State.ROLLED_BACK and done.rollback_map() == half.rollback_map()
    assert coord.admin.list_group_offsets([group])[group] == {(topic, 0): 12, (topic, 1): 9}
    assert coord.rollback(group, timeout=30.0).seq == done.seq  # a rerun changes nothing
    coord.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def _states(bootstrap: str, topic: str) -> dict[str, State]:
    tail = StateTail(KafkaConnection(bootstrap_servers=bootstrap), topic)
    try:
        return {g: s.state for g, s in parse_states(tail.read_to_end()).items()}
    finally:
        tail.close()


def test_kill_9_of_the_switch_command_then_rerun_keeps_old_plus_new_exact(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    topic = kafka.create_topic(unique("cut-kill"), partitions=2)
    group = unique("orders")
    state_topic = unique("_cutover")
    cfg_path = _config(tmp_path, bootstrap, topic, _direct(endpoint, group),
                       cutover_topic=state_topic, shutdown_deadline=10)
    cfg = load_bridge_config(cfg_path)
    producer = KeepProducing(bootstrap, {topic: 2}, rate=150)
    old = OldConsumer(bootstrap, group, [topic], tmp_path / "old.txt")
    try:
        wait_for(lambda: len(old.processed()) >= 100, lambda: f"old saw {len(old.processed())}")
        prep = run_cli("cutover", "prepare", group, "--config", str(cfg_path))
        assert prep.returncode == 0, prep.stderr
        with gated_bridges(cfg, bootstrap) as gate:
            old.stop()
            # kill -9 the switch the moment it has recorded the hand-off (state switching)
            proc = subprocess.Popen(
                [sys.executable, "-m", "migrator", "cutover", "switch", group, "--config",
                 str(cfg_path), "--watch", "2s", "--timeout", "60s"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
            tail = StateTail(KafkaConnection(bootstrap_servers=bootstrap), state_topic)
            killed_in: State | None = None
            deadline = time.monotonic() + 60
            try:
                while time.monotonic() < deadline and proc.poll() is None:
                    found = parse_states(tail.poll(0.01)).get(group)
                    if found is not None and found.state is State.SWITCHING:
                        proc.send_signal(signal.SIGKILL)
                        killed_in = _states(bootstrap, state_topic)[group]
                        break
            finally:
                tail.close()
            proc.communicate(timeout=30)  # waits, and closes its pipes
            assert killed_in is not None, "the switch never recorded a hand-off"
            rerun = run_cli("cutover", "switch", group, "--config", str(cfg_path),
                            "--watch", "2s", "--timeout", "60s")
            assert rerun.returncode == 0, rerun.stderr
            if killed_in is State.SWITCHING:
                assert "finishing the interrupted hand-off" in rerun.stderr
            assert _states(bootstrap, state_topic)[group] is State.SWITCHED
            wait_for(lambda: gate.modes()[group] == "live", lambda: str(gate.modes()))
            time.sleep(2.0)
            producer.stop()
            ends = {(topic, p): e for p, e in kafka.end_offsets(topic, 2).items()}
            await_exactly_once(old.processed, lambda: endpoint_coords(endpoint), ends)
        status = run_cli("cutover", "status", group, "--config", str(cfg_path), "--format", "json")
        assert status.returncode == 0, status.stderr
        assert '"state": "switched"' in status.stdout
    finally:
        producer.stop()
        old.kill()


def test_three_bridges_in_one_group_one_killed_after_the_switch(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint,
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    server = qstash_server_factory()
    topic = kafka.create_topic(unique("cut-three"), partitions=3)
    group = unique("payments")
    cfg_path = _config(tmp_path, bootstrap, topic,
                       {"kind": "publish-url", "url": endpoint.url, "replaces_group": group},
                       shutdown_deadline=10, qstash={"url": server.url, "token": server.token})
    cfg = load_bridge_config(cfg_path)
    producer = KeepProducing(bootstrap, {topic: 3}, rate=150)
    old = OldConsumer(bootstrap, group, [topic], tmp_path / "old.txt")
    port = _free_port()
    bridges = [BridgeProcess(str(cfg_path), {}, *(["--metrics-port", str(port)] if i == 1 else []))
               for i in range(3)]
    coord = Coordinator(cfg, KafkaConnection(bootstrap_servers=bootstrap),
                        qstash=server.connection, poll=0.2)
    try:
        wait_for(lambda: len(old.processed()) >= 100, lambda: f"old saw {len(old.processed())}")
        # no group is delivered yet: the gate itself keeps the process healthy and ready
        wait_for(lambda: _get(f"http://127.0.0.1:{port}/readyz") == 200
                 and _get(f"http://127.0.0.1:{port}/healthz") == 200,
                 lambda: "bridge not ready before any group is switched")
        coord.prepare(group)
        old.stop()
        coord.switch(group, watch=2.0, timeout=60.0)

        def members() -> int:
            return len(coord.status([group])[0].bridge.members)

        wait_for(lambda: members() == 3, lambda: f"bridge group members: {members()}", timeout=60)
        wait_for(lambda: len(endpoint.requests) >= 100, lambda: f"endpoint {len(endpoint.requests)}")
        bridges[0].kill()  # kill -9 in the middle of live delivery
        time.sleep(3.0)
        producer.stop()
        ends = {(topic, p): e for p, e in kafka.end_offsets(topic, 3).items()}
        await_exactly_once(old.processed, lambda: endpoint_coords(endpoint), ends, timeout=60)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        delivered = [line for line in text.splitlines()
                     if line.startswith("bridge_records_delivered_total{") and 'status="ok"' in line]
        assert delivered and float(delivered[0].split()[-1]) > 0, text[:2000]
        for bridge in bridges[1:]:
            assert bridge.terminate() == 0, bridge.output()[-2000:]
        assert server.token not in "".join(b.output() for b in bridges)
    finally:
        producer.stop()
        old.kill()
        for bridge in bridges:
            bridge.kill()
        coord.close()


def test_rollback_after_the_last_bridge_was_killed_9_keeps_old_plus_new_exact(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint,
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    server = qstash_server_factory()
    topic = kafka.create_topic(unique("cut-rbkill"), partitions=2)
    group = unique("refunds")
    cfg_path = _config(tmp_path, bootstrap, topic,
                       {"kind": "enqueue-queue", "queue": "refunds-{partition}", "url": endpoint.url,
                        "replaces_group": group},
                       ordered=True, shutdown_deadline=10,
                       qstash={"url": server.url, "token": server.token})
    cfg = load_bridge_config(cfg_path)
    producer = KeepProducing(bootstrap, {topic: 2}, rate=300)
    runs = [OldConsumer(bootstrap, group, [topic], tmp_path / "old.txt")]
    bridge = BridgeProcess(str(cfg_path), {})
    coord = Coordinator(cfg, KafkaConnection(bootstrap_servers=bootstrap),
                        qstash=server.connection, poll=0.2)
    try:
        wait_for(lambda: len(runs[0].processed()) >= 100, lambda: f"old saw {len(runs[0].processed())}")
        coord.prepare(group)
        runs[0].stop()
        coord.switch(group, watch=2.0, timeout=60.0)
        wait_for(lambda: len(endpoint.requests) >= 300, lambda: f"endpoint {len(endpoint.requests)}")
        bridge.kill()  # the group's only bridge dies between commits
        state = coord.rollback(group, timeout=60.0)
        assert state.state is State.ROLLED_BACK
        runs.append(OldConsumer(bootstrap, group, [topic], tmp_path / "old.txt"))
        time.sleep(2.0)
        producer.stop()
        ends = {(topic, p): e for p, e in kafka.end_offsets(topic, 2).items()}
        # without reading QStash's deliveries past the dead bridge's last commit, the old
        # consumer processed those records a second time (seen: 277 duplicates)
        await_exactly_once(runs[0].processed, lambda: endpoint_coords(endpoint), ends)
    finally:
        producer.stop()
        bridge.kill()
        for run in runs:
            run.kill()
        coord.close()
