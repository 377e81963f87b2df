"""`migrator cutover` at the edge: one clear line and a distinct exit code per mistake, nothing
changed, no traceback, no secret."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.cutover.harness import OldConsumer, run_cli, write_config
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(180)


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error: "), stderr
    assert "Traceback" not in stderr, stderr
    return lines[-1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_input_exit_codes_and_nothing_changes(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    topic = kafka.create_topic(unique("cut-cli"), partitions=1)
    kafka.produce(topic, [Rec(f"v{i}") for i in range(10)])
    group, ghost = unique("known"), unique("ghost")
    kafka.commit_group(group, {(topic, 0): 4})
    token = "qs_token_" + unique("secret")
    state_topic = unique("_cutover")
    cfg = str(write_config(tmp_path / "bridge.yaml", {
        "kafka": {"bootstrap_servers": bootstrap}, "group": unique("mb"),
        "cutover_topic": state_topic,
        "qstash": {"url": f"http://127.0.0.1:{_closed_port()}", "token": token},
        "routes": [{"topic": topic, "destinations": [
            {"kind": "publish-url", "url": endpoint.url, "replaces_group": group},
            {"kind": "publish-url", "url": endpoint.url + "/g", "replaces_group": ghost}]}]}))
    outputs: list[str] = []

    def cli(*args: str) -> tuple[int, str]:
        done = run_cli("cutover", *args, "--config", cfg)
        outputs.append(done.stdout + done.stderr)
        return done.returncode, done.stderr

    rc, err = cli("prepare", "nobody")
    assert rc == 3 and "no destination replaces consumer group 'nobody'" in _one_line(err)
    assert group in _one_line(err)  # names the groups it does replace
    rc, err = cli("prepare", ghost)
    assert rc == 3 and f"Kafka has no consumer group {ghost!r}" in _one_line(err)
    rc, err = cli("rollback", group)  # QStash is checked before anything changes
    assert rc == 7 and "unreachable" in _one_line(err)
    rc, err = cli("switch", group, "--watch", "2s")
    assert rc == 10 and "is old: `switch` is not allowed" in _one_line(err)
    assert f"`migrator cutover prepare {group}`" in _one_line(err)
    rc, err = cli("switch", group, "--watch", "soon")
    assert rc == 3 and "--watch 'soon'" in _one_line(err)
    rc, _ = cli("prepare", group)
    assert rc == 0
    rc, err = cli("switch", group, "--offset", f"{topic}:7=1")
    assert rc == 3 and f"{topic}:7 is not a partition" in _one_line(err)
    rc, err = cli("switch", group, "--offset", f"{topic}:0=99")
    assert rc == 3 and "outside the partition's offsets 0..10" in _one_line(err)
    # no bridge runs with this config: nothing would take the group over
    rc, err = cli("switch", group, "--watch", "1s", "--bridge-wait", "1s")
    assert rc == 13 and "no bridge is running with bridge.yaml" in _one_line(err)
    # a running consumer: the fence times out, says what it saw, changes nothing
    old = OldConsumer(bootstrap, group, [topic], tmp_path / "old.txt")
    try:
        rc, err = cli("switch", group, "--watch", "2s", "--timeout", "4s", "--without-bridge")
    finally:
        old.kill()
    assert rc == 11, err
    line = _one_line(err)
    assert "did not stay quiet" in line and "member(s): old-consumer-" in line
    assert "nothing was changed" in line
    rc, _ = cli("status", group, "--format", "json")
    assert rc == 0
    status = json.loads(outputs[-1][: outputs[-1].rindex("}") + 1])
    (entry,) = status["groups"]
    assert entry["state"] == "prepared" and entry["handoff"] == []
    assert entry["bridge_group"]["members"] == 0
    assert entry["next"] == [f"migrator cutover switch {group}", f"migrator cutover shadow {group}"]
    rc, _ = cli("history", group)
    assert rc == 0 and outputs[-1].count('"state": "prepared"') == 1
    assert not any(token in text for text in outputs)


def test_status_agrees_with_kafkas_consumer_group_command(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    lib = kafka_stack.lib_dir or os.environ.get("KAFKA_LIB_DIR")
    if not lib:
        pytest.fail("no Kafka lib dir (kafka_stack.lib_dir / KAFKA_LIB_DIR) for Kafka's tools")
    bootstrap = kafka_stack.bootstrap_servers
    topic = kafka.create_topic(unique("cut-status"), partitions=3)
    kafka.produce(topic, [Rec(f"v{i}", partition=i % 3) for i in range(30)])
    group = unique("stat")
    kafka.commit_group(group, {(topic, 0): 3, (topic, 1): 10, (topic, 2): 6})
    cfg = str(write_config(tmp_path / "bridge.yaml", {
        "kafka": {"bootstrap_servers": bootstrap}, "group": unique("mb"),
        "cutover_topic": unique("_cutover"),
        "routes": [{"topic": topic, "destinations": [
            {"kind": "direct-http", "url": endpoint.url, "replaces_group": group}]}]}))
    for step in (["prepare", group], ["switch", group, "--watch", "1s", "--without-bridge"]):
        done = run_cli("cutover", *step, "--config", cfg)
        assert done.returncode == 0, done.stderr
    kafka.produce(topic, [Rec(f"w{i}", partition=i % 3) for i in range(9)])  # lag grows
    done = run_cli("cutover", "status", group, "--config", cfg, "--format", "json")
    assert done.returncode == 0, done.stderr
    (entry,) = json.loads(done.stdout)["groups"]
    bridge_group = entry["bridge_group"]["name"]
    tool = subprocess.run(
        ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", f"{lib}/*",
         "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server",
         bootstrap, "--describe", "--group", group, "--group", bridge_group],
        capture_output=True, text=True, timeout=180, check=True).stdout
    theirs: dict[tuple[str, int], tuple[int, int, int]] = {}
    for line in tool.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[1] == topic and cols[2].isdigit():
            theirs[(cols[0], int(cols[2]))] = (int(cols[3]), int(cols[4]), int(cols[5]))
    ours = {}
    for p in entry["partitions"]:
        ours[(group, p["partition"])] = (p["old_committed"], p["end"], p["old_lag"])
        ours[(bridge_group, p["partition"])] = (p["bridge_committed"], p["end"], p["bridge_lag"])
    assert ours == theirs, tool
    assert entry["old_group"]["lag"] == sum(v[2] for k, v in theirs.items() if k[0] == group)
    assert [h["offset"] for h in entry["handoff"]] == [3, 10, 6]
    assert entry["delivered_since_handoff"] == 0  # no bridge ran
