"""`cutover finish`'s printed removal commands, run as printed (through a shell, with Kafka's
own tools), remove exactly the routed topic and the groups they name: a topic and a group the
bridge config does not route survive."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from migrator.config import KafkaConnection
from migrator.kafka.admin import KafkaAdmin
from tests.cutover.estate import delivered_estate
from tests.cutover.harness import run_cli, wait_for
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, unique
from tests.fixtures.qstash import QStashServer
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(300)

# what Kafka's bin/kafka-topics.sh and bin/kafka-consumer-groups.sh run (kafka-run-class.sh)
_TOOLS = {"kafka-topics.sh": "org.apache.kafka.tools.TopicCommand",
          "kafka-consumer-groups.sh": "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"}


def kafka_bin(lib: str, into: Path) -> Path:
    """A bin folder with Kafka's two scripts, each running its tool from ``lib``'s jars."""
    into.mkdir()
    for name, main in _TOOLS.items():
        script = into / name
        script.write_text("#!/bin/sh\nexec java -Xshare:auto -XX:TieredStopAtLevel=1 "
                          f"-cp {shlex.quote(lib + '/*')} {main} \"$@\"\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return into


def test_printed_delete_commands_run_in_a_shell_remove_exactly_the_routed_topic_and_groups(
    kafka: KafkaKit, kafka_stack: EstateInfo,
    endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    lib = kafka_stack.lib_dir or os.environ.get("KAFKA_LIB_DIR")
    if not lib:
        pytest.fail("no Kafka lib dir (KAFKA_LIB_DIR) for Kafka's tools")
    bin_dir = kafka_bin(lib, tmp_path / "bin")
    est = delivered_estate(kafka, kafka_stack, endpoint_factory, qstash_server_factory, tmp_path)
    bystander = kafka.create_topic(unique("bystander"), partitions=1)
    other_group = unique("bystander-group")
    kafka.commit_group(other_group, {(bystander, 0): 0})
    admin = KafkaAdmin(KafkaConnection(bootstrap_servers=kafka_stack.bootstrap_servers))
    try:
        r = run_cli("cutover", "finish", "--config", str(est.path), "--window", "1s")
        assert r.returncode == 0, r.stdout + r.stderr
        commands = [line.strip() for line in r.stdout.splitlines()
                    if line.strip().startswith("kafka-")]
        assert commands, r.stdout
        named_groups = {shlex.split(c)[-1] for c in commands if "--group" in c}
        named_topics = {shlex.split(c)[-1] for c in commands if "--topic" in c}
        assert named_topics == {est.topic}, commands
        bgroup = est.coord.load(est.group).bridge_group
        assert {est.group, bgroup} <= named_groups, commands
        before = {g.group_id for g in admin.list_groups()}
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        for command in commands:
            done = subprocess.run(["bash", "-c", command], env=env, capture_output=True,
                                  text=True, timeout=180)
            assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        wait_for(lambda: est.topic not in admin.describe_topics([est.topic]),
                 lambda: "the routed topic is still there")
        after = {g.group_id for g in admin.list_groups()}
        assert before - after == named_groups, (before - after, named_groups)
        assert other_group in after
        topics = admin.describe_topics([bystander, est.cfg.cutover_topic])
        assert bystander in topics and est.cfg.cutover_topic in topics
    finally:
        admin.close()
        est.close()
