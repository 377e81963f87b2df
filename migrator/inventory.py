"""The inventory snapshot: what `migrator audit` found and `migrator plan` reads.

It is data only (frozen pydantic models) and versioned with ``schema_version``; the JSON written
by ``migrator audit --format json`` is ``Inventory.model_dump_json()``. A reader refuses a
snapshot whose major version it does not know.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from migrator.qstash_tiers import TierName

__all__ = [
    "SCHEMA_VERSION",
    "BrokerInfo",
    "ClusterInfo",
    "ConfigValue",
    "ConnectInfo",
    "ConnectorInfo",
    "ConsumerGroupInfo",
    "Finding",
    "GroupMember",
    "GroupPartitionOffset",
    "Inventory",
    "PartitionInfo",
    "RecordSample",
    "SchemaReferenceInfo",
    "SchemaRegistryInfo",
    "SchemaSubjectInfo",
    "SectionStatus",
    "Severity",
    "TopicInfo",
]

SCHEMA_VERSION = "1.0"

Severity = Literal["blocker", "warning", "info"]
ValueFormat = Literal[
    "avro", "json_schema", "protobuf", "json", "text", "binary", "empty", "unknown"
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SectionStatus(_Model):
    """Whether a source (registry, Connect) could be read; when not, why (no secrets)."""

    available: bool = True
    error: str | None = None


class BrokerInfo(_Model):
    id: int
    host: str
    port: int
    rack: str | None = None


class ClusterInfo(_Model):
    cluster_id: str | None
    controller_id: int | None
    brokers: list[BrokerInfo]
    bootstrap_servers: str


class PartitionInfo(_Model):
    partition: int
    leader: int | None
    replicas: list[int]
    isr: list[int]
    low_watermark: int
    high_watermark: int

    @property
    def records(self) -> int:
        return max(0, self.high_watermark - self.low_watermark)


class ConfigValue(_Model):
    value: str | None
    source: str = Field(description="'default' or where the override comes from, e.g. 'topic'.")
    is_default: bool
    is_sensitive: bool = False


class RecordSample(_Model):
    """What a read of up to N records per topic (by assignment, no group) showed."""

    sampled: int
    size_p50: int = 0
    size_p95: int = 0
    size_p99: int = 0
    size_max: int = 0
    keyed_ratio: float = 0.0
    tombstones: int = 0
    header_names: list[str] = Field(default_factory=list)
    value_format: ValueFormat = "unknown"
    formats: dict[str, int] = Field(default_factory=dict, description="format -> count")
    schema_ids: list[int] = Field(default_factory=list)
    subjects: list[str] = Field(default_factory=list)


class TopicInfo(_Model):
    name: str
    internal: bool = False
    partitions: list[PartitionInfo]
    replication_factor: int
    configs: dict[str, ConfigValue] = Field(default_factory=dict)
    records_per_second: float | None = Field(None, description="From watermark deltas, if sampled.")
    records_last_24h: int | None = Field(
        None, description="Records appended in the last 24 h (high watermark minus offset by time)."
    )
    sample: RecordSample | None = None

    @property
    def total_records(self) -> int:
        return sum(p.records for p in self.partitions)

    def config(self, key: str) -> str | None:
        value = self.configs.get(key)
        return value.value if value else None


class GroupMember(_Model):
    member_id: str
    client_id: str
    host: str
    assignment: list[str] = Field(default_factory=list, description="'topic[partition]' entries.")


class GroupPartitionOffset(_Model):
    topic: str
    partition: int
    committed: int | None
    high_watermark: int
    lag: int | None


class ConsumerGroupInfo(_Model):
    group_id: str
    state: str
    type: str = "classic"
    protocol: str | None = None
    members: list[GroupMember] = Field(default_factory=list)
    offsets: list[GroupPartitionOffset] = Field(default_factory=list)
    total_lag: int = 0
    topics: list[str] = Field(default_factory=list)
    lag_moving: bool | None = Field(None, description="Did lag change while sampling, if known.")
    committed_moving: bool | None = Field(
        None, description="Did any committed offset advance while sampling, if known."
    )


class SchemaReferenceInfo(_Model):
    name: str
    subject: str
    version: int


class SchemaSubjectInfo(_Model):
    subject: str
    versions: list[int]
    latest_version: int
    latest_id: int
    schema_type: Literal["AVRO", "JSON", "PROTOBUF"]
    compatibility: str | None = None
    references: list[SchemaReferenceInfo] = Field(default_factory=list)
    topic: str | None = Field(None, description="Topic by the topic-name strategy, if it exists.")
    role: Literal["key", "value"] | None = None
    schema_str: str | None = Field(None, description="Latest schema text, for typed scaffolds.")


class SchemaRegistryInfo(_Model):
    url: str | None = None
    status: SectionStatus = Field(default_factory=SectionStatus)
    global_compatibility: str | None = None
    subjects: list[SchemaSubjectInfo] = Field(default_factory=list)


class ConnectorInfo(_Model):
    name: str
    connector_class: str
    kind: Literal["source", "sink", "unknown"]
    state: str
    task_states: list[str] = Field(default_factory=list)
    config: dict[str, str] = Field(default_factory=dict, description="Secrets redacted.")
    topics: list[str] = Field(default_factory=list)


class ConnectInfo(_Model):
    url: str | None = None
    status: SectionStatus = Field(default_factory=SectionStatus)
    version: str | None = None
    connectors: list[ConnectorInfo] = Field(default_factory=list)


class Finding(_Model):
    code: str
    severity: Severity
    object: str = Field(description="What it is about, e.g. 'topic:orders' or 'group:billing'.")
    message: str
    remedy: str


class Inventory(_Model):
    schema_version: str = SCHEMA_VERSION
    generated_at: str
    tool_version: str
    qstash_plan: TierName = "payg"  # the QStash tier (Upstash calls it a plan)
    cluster: ClusterInfo
    topics: list[TopicInfo]
    consumer_groups: list[ConsumerGroupInfo]
    schema_registry: SchemaRegistryInfo = Field(default_factory=SchemaRegistryInfo)
    connect: ConnectInfo = Field(default_factory=ConnectInfo)
    findings: list[Finding] = Field(default_factory=list)

    def topic(self, name: str) -> TopicInfo | None:
        return next((t for t in self.topics if t.name == name), None)
