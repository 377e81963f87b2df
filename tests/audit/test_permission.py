"""PERMISSION_DENIED findings: from a librdkafka error code to the finding the report shows."""

from __future__ import annotations

from confluent_kafka import KafkaError

from migrator.audit.findings import CATALOG, evaluate, permission_findings
from migrator.audit.runner import principal_of
from migrator.config import KafkaConnection
from migrator.inventory import ClusterInfo, ConsumerGroupInfo, Inventory
from migrator.kafka.access import denial_for


def test_group_authorization_failure_becomes_a_finding_with_the_acl_to_grant() -> None:
    denials = [
        denial_for(KafkaError.GROUP_AUTHORIZATION_FAILED, operation="Describe",
                   what="describing the group", group="billing"),
        denial_for(KafkaError.GROUP_AUTHORIZATION_FAILED, operation="Describe",
                   what="reading its committed offsets", group="billing"),
    ]
    [finding] = permission_findings([d for d in denials if d], "User:audit", "b:9092")
    assert (finding.code, finding.severity, finding.object) == (
        "PERMISSION_DENIED", "warning", "group:billing")
    assert finding.message.startswith("Kafka refused User:audit Describe on group billing "
                                      "(describing the group and reading its committed offsets)")
    assert finding.remedy == ("Grant the read-only ACL: kafka-acls --bootstrap-server b:9092 --add "
                              "--allow-principal User:audit --operation Describe --group billing")


def test_topic_denials_merge_per_topic_and_the_cluster_gets_its_own() -> None:
    codes = [
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, "DescribeConfigs", "reading its configs"),
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, "Read", "sampling its records"),
        (KafkaError.CLUSTER_AUTHORIZATION_FAILED, "Describe", "describing the cluster"),
    ]
    denials = [denial_for(code, operation=op, what=what, topic="orders") for code, op, what in codes]
    found = {f.object: f for f in permission_findings([d for d in denials if d])}
    assert set(found) == {"topic:orders", "cluster"}
    topic = found["topic:orders"]
    assert "--operation DescribeConfigs --operation Read --topic orders" in topic.remedy
    assert "configs are not reported" in topic.message and "no record was sampled" in topic.message
    assert "User:<audit principal>" in topic.remedy  # principal unknown: a placeholder
    assert found["cluster"].remedy.endswith("--operation Describe --cluster")


def test_evaluate_sorts_extra_findings_with_the_rest_and_the_code_is_catalogued() -> None:
    inv = Inventory(
        generated_at="now", tool_version="t",
        cluster=ClusterInfo(cluster_id="c", controller_id=1, brokers=[], bootstrap_servers="b"),
        topics=[], consumer_groups=[ConsumerGroupInfo(group_id="g", state="Stable",
                                                      members=[], total_lag=3, topics=["t"],
                                                      lag_moving=None, committed_moving=None)],
    )
    denial = denial_for(KafkaError.GROUP_AUTHORIZATION_FAILED, operation="Describe",
                        what="describing the group", group="a")
    assert denial is not None
    codes = [f.code for f in evaluate(inv, extra=permission_findings([denial]))]
    assert codes == ["CONSUMER_LAG", "PERMISSION_DENIED", "STALE_CONSUMER_GROUP"]  # by severity
    assert CATALOG["PERMISSION_DENIED"].severity == "warning"


def test_principal_of_the_connection() -> None:
    sasl = KafkaConnection.build(bootstrap_servers="b:1", x_options=[
        "security.protocol=SASL_PLAINTEXT", "sasl.mechanism=SCRAM-SHA-256",
        "sasl.username=audit", "sasl.password=pw"])
    assert principal_of(sasl) == "User:audit"
    assert principal_of(KafkaConnection.build(bootstrap_servers="b:1")) == "User:ANONYMOUS"
