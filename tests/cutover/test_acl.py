"""`migrator cutover` refused by Kafka's own authorizer: one line, exit 5, nothing changed.

A dedicated broker with ``StandardAuthorizer`` (tests/fixtures/acl.py); the operator runs the
real CLI over SASL with a Java properties file and holds every ACL the cutover needs except one:

    noalter    may read the old group's offsets, but only Describe (not Read) the bridge's group
               for it: `switch` cannot write the hand-off offsets there
    norollback may write the bridge group's offsets, but only Describe the old group: `switch`
               works, `rollback` cannot set the old group's offsets back
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AclOperation, ResourceType  # type: ignore[attr-defined]

from migrator.bridge.config import load_bridge_config
from migrator.config import KafkaConnection
from migrator.cutover.coordinator import Coordinator
from migrator.cutover.state import State
from tests.cutover.harness import write_config
from tests.fixtures.acl import AclBroker, acl_broker_running, allow
from tests.fixtures.cli import migrator
from tests.fixtures.kafka import KafkaKit, Rec

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

OPERATORS = ("noalter", "norollback")
BRIDGE = "mb"  # the bridge config's group prefix: bridge groups are mb.<old group>


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclBroker]:
    with acl_broker_running(tmp_path_factory.mktemp("cutover-acl"), OPERATORS) as b:
        kit = KafkaKit(b.bootstrap, None)
        kit.create_topic(b.t("orders"), 2)
        kit.produce(b.t("orders"), (Rec(f"v{i}", partition=i % 2) for i in range(20)))
        for user in OPERATORS:
            kit.commit_group(b.t(f"old-{user}"), {(b.t("orders"), 0): 3, (b.t("orders"), 1): 4})
        topic, group = ResourceType.TOPIC, ResourceType.GROUP
        acls = []
        for user in OPERATORS:
            old, bridge = b.t(f"old-{user}"), f"{BRIDGE}.{b.t(f'old-{user}')}"
            writes_old = user != "norollback"
            writes_bridge = user != "noalter"
            acls += [
                *allow(user, ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE),
                *allow(user, topic, b.t("orders"), AclOperation.DESCRIBE, AclOperation.READ),
                *allow(user, topic, b.t(f"state-{user}"), AclOperation.ALL),
                *allow(user, group, old, AclOperation.DESCRIBE,
                       *([AclOperation.READ] if writes_old else [])),
                *allow(user, group, bridge, AclOperation.DESCRIBE,
                       *([AclOperation.READ] if writes_bridge else [])),
                *allow(user, group, f"{BRIDGE}.bridges", AclOperation.DESCRIBE),
                *allow(user, group, "migrator-state-reader", AclOperation.ALL),
            ]
        probe = b.admin_as("norollback")
        b.grant(acls, lambda: b.t("orders") in probe.list_topics(timeout=10).topics,
                what="the operators' ACLs")
        yield b


def _config(b: AclBroker, user: str, tmp: Path) -> Path:
    return write_config(tmp / f"bridge-{user}.yaml", {
        "kafka": {"bootstrap_servers": b.sasl_bootstrap}, "group": BRIDGE,
        "cutover_topic": b.t(f"state-{user}"),
        "routes": [{"topic": b.t("orders"), "destinations": [
            {"kind": "direct-http", "url": "http://127.0.0.1:9/never",
             "replaces_group": b.t(f"old-{user}")}]}]})


def cutover(b: AclBroker, user: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    props = b.properties(user, tmp / f"{user}.properties")
    return migrator("cutover", *args, "--config", str(_config(b, user, tmp)),
                    "--kafka-config", str(props),
                    env={k: None for k in os.environ if k != "PATH"})


def _coordinator(b: AclBroker, user: str, tmp: Path) -> Coordinator:
    """The same config as the super user (PLAINTEXT) sees it: to read the state back."""
    cfg = load_bridge_config(_config(b, user, tmp))
    return Coordinator(cfg, KafkaConnection(bootstrap_servers=b.bootstrap), poll=0.2)


def _committed(b: AclBroker, group: str) -> dict[int, int]:
    return KafkaKit(b.bootstrap, None).committed(group, b.t("orders"), 2)


def _one_line_exit_5(result: subprocess.CompletedProcess[str], b: AclBroker, user: str) -> str:
    """The refusal is one line (after switch's instruction to stop the old consumers)."""
    assert result.returncode == 5, (result.returncode, result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.rstrip().endswith(errors[0]), result.stderr
    assert b.passwords[user] not in result.stdout + result.stderr
    return errors[0]


def test_a_switch_the_authorizer_refuses_exits_5_and_leaves_the_group_prepared(
    broker: AclBroker, tmp_path: Path
) -> None:
    b, user = broker, "noalter"
    old, bridge = b.t(f"old-{user}"), f"{BRIDGE}.{b.t(f'old-{user}')}"
    prepared = cutover(b, user, tmp_path, "prepare", old)
    assert prepared.returncode == 0, prepared.stderr
    result = cutover(b, user, tmp_path, "switch", old, "--watch", "1s", "--timeout", "30s",
                     "--without-bridge")
    line = _one_line_exit_5(result, b, user)
    assert bridge in line and "nothing was changed" in line, line
    # refused before the operator is told to stop the old consumers, not after the fence
    assert "Stop every consumer" not in result.stderr, result.stderr
    coord = _coordinator(b, user, tmp_path)
    try:
        assert coord.load(old).state is State.PREPARED
    finally:
        coord.close()
    assert _committed(b, bridge) == {0: -1001, 1: -1001}  # none written (-1001: no offset)
    assert _committed(b, old) == {0: 3, 1: 4}


def test_a_rollback_the_authorizer_refuses_exits_5_and_leaves_the_group_switched(
    broker: AclBroker, tmp_path: Path
) -> None:
    b, user = broker, "norollback"
    old, bridge = b.t(f"old-{user}"), f"{BRIDGE}.{b.t(f'old-{user}')}"
    assert cutover(b, user, tmp_path, "prepare", old).returncode == 0
    switched = cutover(b, user, tmp_path, "switch", old, "--watch", "1s", "--timeout", "30s",
                       "--without-bridge")
    assert switched.returncode == 0, switched.stderr
    assert _committed(b, bridge) == {0: 3, 1: 4}
    result = cutover(b, user, tmp_path, "rollback", old, "--timeout", "10s")
    line = _one_line_exit_5(result, b, user)
    assert old in line and "nothing was changed" in line, line
    coord = _coordinator(b, user, tmp_path)
    try:
        assert coord.load(old).state is State.SWITCHED
    finally:
        coord.close()
    assert _committed(b, old) == {0: 3, 1: 4}
