"""Small builders of Inventory objects for the planner's unit tests."""

from __future__ import annotations

from migrator.inventory import (
    ClusterInfo,
    ConfigValue,
    ConnectInfo,
    ConnectorInfo,
    ConsumerGroupInfo,
    Finding,
    GroupPartitionOffset,
    Inventory,
    PartitionInfo,
    RecordSample,
    TopicInfo,
)

__all__ = ["connector", "group", "inventory", "topic"]


def topic(
    name: str,
    *,
    partitions: int = 3,
    records: int = 100,
    rps: float | None = 1.0,
    keyed: float = 0.0,
    size_max: int = 200,
    fmt: str = "json",
    tombstones: int = 0,
    configs: dict[str, str] | None = None,
    subjects: list[str] | None = None,
) -> TopicInfo:
    return TopicInfo(
        name=name,
        partitions=[
            PartitionInfo(partition=p, leader=1, replicas=[1], isr=[1], low_watermark=0,
                          high_watermark=records // partitions)
            for p in range(partitions)
        ],
        replication_factor=1,
        configs={k: ConfigValue(value=v, source="topic", is_default=False)
                 for k, v in (configs or {}).items()},
        records_per_second=rps,
        sample=RecordSample(sampled=10, size_max=size_max, keyed_ratio=keyed,
                            value_format=fmt,
                            tombstones=tombstones, subjects=subjects or []),
    )


def group(group_id: str, *topics: str, state: str = "Stable") -> ConsumerGroupInfo:
    return ConsumerGroupInfo(
        group_id=group_id, state=state, topics=list(topics),
        offsets=[GroupPartitionOffset(topic=t, partition=0, committed=1, high_watermark=2, lag=1)
                 for t in topics],
    )


def connector(name: str, kind: str, topics: list[str], **config: str) -> ConnectorInfo:
    return ConnectorInfo(name=name, connector_class="org.apache.kafka.connect.file.FileStream",
                         kind=kind, state="RUNNING", topics=topics,
                         config=config)


def inventory(
    topics: list[TopicInfo],
    groups: list[ConsumerGroupInfo],
    *,
    connectors: list[ConnectorInfo] | None = None,
    findings: list[Finding] | None = None,
) -> Inventory:
    return Inventory(
        generated_at="2026-11-25T16:00:00+00:00",
        tool_version="test",
        cluster=ClusterInfo(cluster_id="c1", controller_id=1, brokers=[],
                            bootstrap_servers="127.0.0.1:9092"),
        topics=topics,
        consumer_groups=groups,
        connect=ConnectInfo(url="http://127.0.0.1:8083", connectors=connectors or []),
        findings=findings or [],
    )
