"""`migrator audit` under limited ACLs, end to end on a real broker with an authorizer.

The shared stack has no authorizer, so this module starts its own single KRaft broker from the
project's stack code (``format_storage``/``start_broker`` with ``extra_properties`` enabling
``StandardAuthorizer``), creates SCRAM users with partial read-only ACLs, and runs the real CLI
over the SASL listener with a Java properties file:

    auditor    Describe on the cluster; Describe+DescribeConfigs+Read on <p>-open;
               Describe+Read on <p>-noconf (no DescribeConfigs); Describe+DescribeConfigs on
               <p>-noread (no Read); nothing on <p>-secret (hidden); Describe on group <p>-g-open
               only (not on <p>-g-denied)
    partial    Describe+DescribeConfigs+Read on <p>-open only, nothing on the cluster
    nobody     no ACL at all
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from migrator.stack import servers
from migrator.stack.maven import resolve_jars
from migrator.stack.process import free_port, stop, wait_until
from tests.fixtures.kafka import KafkaKit, Rec

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    # PLAINTEXT clients (the seeding below) and the controller connect as ANONYMOUS.
    "super.users": "User:ANONYMOUS;User:migrator",
    "allow.everyone.if.no.acl.found": "false",
}


@dataclass(frozen=True)
class AclBroker:
    bootstrap: str  # PLAINTEXT, super user
    sasl_bootstrap: str
    prefix: str
    passwords: dict[str, str]
    run_dir: Path

    def t(self, short: str) -> str:
        return f"{self.prefix}-{short}"

    def properties(self, user: str, path: Path) -> Path:
        path.write_text(
            f"bootstrap.servers={self.sasl_bootstrap}\n"
            "security.protocol=SASL_PLAINTEXT\n"
            "sasl.mechanism=SCRAM-SHA-256\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
            f'    username="{user}" password="{self.passwords[user]}";\n'
        )
        return path


def test_extra_properties_are_appended_and_the_default_is_unchanged(tmp_path: Path) -> None:
    ports = servers.BrokerPorts(1, 2, 3, 4)
    default = servers._broker_properties(tmp_path / "a", ports).read_text()
    assert "authorizer" not in default
    extra = servers._broker_properties(tmp_path / "b", ports, AUTHORIZER).read_text()
    assert extra.replace(str(tmp_path / "b"), str(tmp_path / "a")).startswith(default)
    assert extra.endswith("allow.everyone.if.no.acl.found=false\n")


def _allow(user: str, kind: ResourceType, name: str, *ops: AclOperation) -> list[AclBinding]:
    return [AclBinding(kind, name, ResourcePatternType.LITERAL, f"User:{user}", "*", op,
                       AclPermissionType.ALLOW) for op in ops]


def _seed(broker: AclBroker) -> None:
    kit = KafkaKit(broker.bootstrap, None)
    t = broker.t
    for short, parts in (("open", 2), ("noconf", 1), ("noread", 1), ("secret", 1)):
        kit.create_topic(t(short), parts, {"retention.ms": "3600000"} if short == "open" else {})
    kit.produce(t("open"), (Rec(f'{{"n": {i}}}'.encode(), key=f"k{i % 3}", partition=i % 2)
                            for i in range(12)))
    for short in ("noconf", "noread", "secret"):
        kit.produce(t(short), (Rec(f"line {i}".encode()) for i in range(4)))
    # g-open: 2 behind on each partition of -open; g-denied reads -open too, fully caught up.
    kit.commit_group(t("g-open"), {(t("open"), 0): 4, (t("open"), 1): 4})
    kit.commit_group(t("g-denied"), {(t("open"), 0): 6, (t("open"), 1): 6})

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    upserts: list[UserScramCredentialAlteration] = [UserScramCredentialUpsertion(
        user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), password.encode())
        for user, password in broker.passwords.items() if user != "migrator"]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(timeout=30)
    topic, group = ResourceType.TOPIC, ResourceType.GROUP
    read_only = (AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS, AclOperation.READ)
    acls = [
        *_allow("auditor", ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE),
        *_allow("auditor", topic, t("open"), *read_only),
        *_allow("auditor", topic, t("noconf"), AclOperation.DESCRIBE, AclOperation.READ),
        *_allow("auditor", topic, t("noread"), AclOperation.DESCRIBE,
                AclOperation.DESCRIBE_CONFIGS),
        *_allow("auditor", group, t("g-open"), AclOperation.DESCRIBE),
        *_allow("partial", topic, t("open"), *read_only),
    ]
    for future in admin.create_acls(acls).values():
        future.result(timeout=30)
    # ACLs reach the authorizer through the metadata log: wait until the auditor sees them.
    probe = AdminClient({"bootstrap.servers": broker.sasl_bootstrap,
                         "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-256",
                         "sasl.username": "auditor", "sasl.password": broker.passwords["auditor"]})
    wait_until(lambda: t("g-open") in {g.group_id for g in
                                       probe.list_consumer_groups().result(10).valid}
               and t("noread") in probe.list_topics(timeout=10).topics,
               timeout=30, what="the auditor's ACLs")


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclBroker]:
    run = tmp_path_factory.mktemp("acl-broker")
    jars = resolve_jars(log=run / "logs" / "maven.log")
    ports = servers.BrokerPorts(free_port(), free_port(), free_port(), free_port())
    passwords = {user: secrets.token_urlsafe(16) for user in ("migrator", "auditor", "partial",
                                                               "nobody")}
    servers.format_storage(jars, run, ports, servers.new_cluster_id(), "migrator",
                           passwords["migrator"], extra_properties=AUTHORIZER)
    text = (run / "server.properties").read_text()
    assert "allow.everyone.if.no.acl.found=false" in text and "StandardAuthorizer" in text
    proc = servers.start_broker(jars, run)
    broker = AclBroker(f"127.0.0.1:{ports.plaintext}", f"127.0.0.1:{ports.sasl}",
                       f"acl-{uuid.uuid4().hex[:6]}", passwords, run)
    try:
        wait_until(lambda: servers.broker_ready(broker.bootstrap), timeout=90,
                   what="the ACL test broker", proc=proc, log=run / "logs" / "kafka.log")
        _seed(broker)
        yield broker
    finally:
        stop(proc, grace=10)


def audit(broker: AclBroker, user: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    props = broker.properties(user, tmp / f"{user}.properties")
    # in-process, with every variable but PATH unset: only the properties file counts
    from tests.fixtures.cli import migrator

    return migrator("audit", "--kafka-config", str(props), "--timeout", "15", "--sample-seconds",
                    "0", "--sample-records", "10", *args,
                    env={k: None for k in os.environ if k != "PATH"})


def _findings(report: dict[str, Any], code: str = "PERMISSION_DENIED") -> dict[str, dict[str, Any]]:
    return {f["object"]: f for f in report["findings"] if f["code"] == code}


def test_limited_acls_give_a_partial_report_not_an_abort(acl_broker: AclBroker,
                                                         tmp_path: Path) -> None:
    b = acl_broker
    result = audit(b, "auditor", tmp_path, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    topics = {t["name"]: t for t in report["topics"]}
    # Topics it may not Describe are hidden by Kafka itself; the three it may are reported.
    assert set(topics) == {b.t("open"), b.t("noconf"), b.t("noread")}
    # The fully allowed topic is complete: partitions, watermarks, configs, sample.
    open_topic = topics[b.t("open")]
    assert [p["high_watermark"] for p in open_topic["partitions"]] == [6, 6]
    assert open_topic["configs"]["retention.ms"]["value"] == "3600000"
    assert open_topic["configs"]["cleanup.policy"]["value"] == "delete"
    assert open_topic["sample"]["sampled"] == 10 and open_topic["sample"]["keyed_ratio"] == 1.0
    # No DescribeConfigs: no configs, but watermarks and the sample are there.
    assert topics[b.t("noconf")]["configs"] == {}
    assert topics[b.t("noconf")]["sample"]["sampled"] == 4
    # No Read: configs and watermarks, no sample.
    assert topics[b.t("noread")]["configs"]["cleanup.policy"]["value"] == "delete"
    assert topics[b.t("noread")]["partitions"][0]["high_watermark"] == 4
    assert topics[b.t("noread")]["sample"] is None
    # The allowed group is complete; the denied one is not guessed at.
    groups = {g["group_id"]: g for g in report["consumer_groups"]}
    assert set(groups) == {b.t("g-open")}
    assert groups[b.t("g-open")]["total_lag"] == 4 and groups[b.t("g-open")]["topics"] == [b.t("open")]
    denied = _findings(report)
    assert set(denied) == {f"group:{b.t('g-denied')}", f"topic:{b.t('noconf')}",
                           f"topic:{b.t('noread')}"}
    group = denied[f"group:{b.t('g-denied')}"]
    assert group["severity"] == "warning"
    assert "Describe" in group["message"] and "committed offsets" in group["message"]
    assert group["remedy"].endswith(
        f"--add --allow-principal User:auditor --operation Describe --group {b.t('g-denied')}")
    assert "--operation DescribeConfigs --topic " + b.t("noconf") in denied[
        f"topic:{b.t('noconf')}"]["remedy"]
    assert "--operation Read --topic " + b.t("noread") in denied[f"topic:{b.t('noread')}"]["remedy"]
    # The ordinary findings still fire on what could be read.
    assert f"group:{b.t('g-open')}" in _findings(report, "CONSUMER_LAG")
    assert b.passwords["auditor"] not in result.stdout + result.stderr


def test_no_password_in_any_format(acl_broker: AclBroker, tmp_path: Path) -> None:
    b = acl_broker
    for fmt in ("table", "markdown", "html"):
        out = tmp_path / f"report.{fmt}"
        result = audit(b, "auditor", tmp_path, "--format", fmt, "-o", str(out))
        assert result.returncode == 0, result.stderr
        everything = out.read_text() + result.stdout + result.stderr
        assert "PERMISSION_DENIED" in everything
        # Each refused resource's own grant is shown, not one remedy for the code.
        for grant in (f"--operation Describe --group {b.t('g-denied')}",
                      f"--operation DescribeConfigs --topic {b.t('noconf')}",
                      f"--operation Read --topic {b.t('noread')}"):
            assert grant in everything, (fmt, grant)
        assert b.passwords["auditor"] not in everything
        assert b.passwords["migrator"] not in everything


def test_without_cluster_describe_the_report_says_it_may_be_partial(acl_broker: AclBroker,
                                                                    tmp_path: Path) -> None:
    b = acl_broker
    result = audit(b, "partial", tmp_path, "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [t["name"] for t in report["topics"]] == [b.t("open")]
    # Without cluster Describe, ListGroups holds only groups it may Describe: none here.
    assert report["consumer_groups"] == []
    cluster = _findings(report)["cluster"]
    assert "may be missing" in cluster["message"]
    assert "--allow-principal User:partial --operation Describe --cluster" in cluster["remedy"]
    assert b.passwords["partial"] not in result.stdout + result.stderr


def test_a_principal_refused_everything_exits_5(acl_broker: AclBroker, tmp_path: Path) -> None:
    result = audit(acl_broker, "nobody", tmp_path, "--format", "json")
    assert result.returncode == 5, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "User:nobody" in lines[0] and "grants it nothing" in lines[0]
    assert result.stdout == "" and acl_broker.passwords["nobody"] not in result.stderr


def test_wrong_password_still_exits_5(acl_broker: AclBroker, tmp_path: Path) -> None:
    b = acl_broker
    bad = AclBroker(b.bootstrap, b.sasl_bootstrap, b.prefix,
                    {**b.passwords, "auditor": "not-" + b.passwords["auditor"]}, b.run_dir)
    result = audit(bad, "auditor", tmp_path, "--format", "json")
    assert result.returncode == 5, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert bad.passwords["auditor"] not in result.stderr
