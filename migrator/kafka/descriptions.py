"""What the admin reads, as plain frozen data (no confluent-kafka objects): the cluster, its
topics and partitions, config entries, and consumer groups with their members."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "BrokerNode",
    "ClusterDescription",
    "ConfigEntryData",
    "GroupDescription",
    "GroupListing",
    "GroupMemberData",
    "PartitionDescription",
    "TopicDescription",
    "TopicPartitionKey",
]

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class BrokerNode:
    id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True)
class ClusterDescription:
    cluster_id: str | None
    controller_id: int | None
    brokers: tuple[BrokerNode, ...]
    # ACL operations the principal holds on the cluster (None: not known).
    authorized_operations: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PartitionDescription:
    partition: int
    leader: int | None
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True)
class TopicDescription:
    name: str
    internal: bool
    partitions: tuple[PartitionDescription, ...]


@dataclass(frozen=True)
class ConfigEntryData:
    name: str
    value: str | None
    source: str
    is_default: bool
    is_sensitive: bool


@dataclass(frozen=True)
class GroupListing:
    group_id: str
    state: str
    type: str
    is_simple: bool


@dataclass(frozen=True)
class GroupMemberData:
    member_id: str
    client_id: str
    host: str
    assignment: tuple[TopicPartitionKey, ...]


@dataclass(frozen=True)
class GroupDescription:
    group_id: str
    state: str
    type: str
    protocol: str | None
    members: tuple[GroupMemberData, ...] = field(default_factory=tuple)
