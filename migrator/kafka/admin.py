"""A narrow, read-only wrapper over ``confluent_kafka.admin.AdminClient``.

Every call is batched (one request for many topics, partitions or groups wherever Kafka's admin
API allows it), bounded by the wrapper's timeout, and returns plain frozen data rather than
confluent-kafka objects. librdkafka errors become :class:`~migrator.errors.KafkaUnavailableError`
(the cluster does not answer) or :class:`~migrator.errors.KafkaAuthError` (it refuses our
credentials), by :func:`migrator.kafka.errors.translate`. An authorization error on one resource
(a group, a topic's configs, the cluster description) does not abort: the resource is left out
of the answer and kept, as an :class:`~migrator.kafka.access.AccessDenied`, in
:attr:`KafkaAdmin.denied`.

Nothing here writes: no topic, config, offset or group is ever created or changed.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
from collections.abc import Collection, Iterator, Sequence
from typing import Any, Literal, TypeVar

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    ConfigSource,
    OffsetSpec,
    ResourceType,
)

from migrator.config import KafkaConnection
from migrator.kafka.access import CLUSTER_RESOURCE, AccessDenied
from migrator.kafka.answers import AdminRequests, map_kafka_error
from migrator.kafka.client_log import librdkafka_logger
from migrator.kafka.descriptions import (
    BrokerNode,
    ClusterDescription,
    ConfigEntryData,
    GroupDescription,
    GroupListing,
    GroupMemberData,
    PartitionDescription,
    TopicDescription,
    TopicPartitionKey,
)
from migrator.kafka.errors import rejected_settings

__all__ = ["KafkaAdmin"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Batch sizes: large enough that a 10,000-partition estate needs a handful of requests, small
# enough that one request never approaches the broker's default 100 MB request limit.
TOPIC_BATCH = 1000
CONFIG_BATCH = 1000
OFFSET_BATCH = 20000
GROUP_BATCH = 500
# list_consumer_group_offsets takes one group per request: this many are kept in flight at once.
GROUP_OFFSETS_IN_FLIGHT = 64



def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _enum_name(value: Any) -> str:
    name = getattr(value, "name", None)
    return str(name) if name is not None else str(value)


class KafkaAdmin(AdminRequests):
    """Read-only admin operations against one cluster, each bounded by ``timeout`` seconds."""

    def __init__(
        self,
        connection: KafkaConnection,
        *,
        timeout: float = 30.0,
        client: Any | None = None,
    ) -> None:
        super().__init__(connection.describe(), timeout)
        if client is not None:
            self._client = client
        else:
            conf: dict[str, Any] = dict(connection.to_librdkafka())
            conf.setdefault("client.id", "migrator-audit")
            conf.setdefault("socket.timeout.ms", str(max(1000, int(timeout * 1000))))
            conf["error_cb"] = self._on_error
            conf["logger"] = librdkafka_logger()
            try:
                self._client = AdminClient(conf)
            except KafkaException as exc:  # a property librdkafka does not know or accept
                raise rejected_settings(exc, "client", conf, "fix it in -X or the properties "
                                        "file (--kafka-config).") from None

    def close(self) -> None:
        """Release the client (AdminClient has no explicit close; drop the reference)."""
        self._client = None

    def __enter__(self) -> KafkaAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- cluster ----------------------------------------------------------------------------

    def describe_cluster(self) -> ClusterDescription:
        """Cluster id, controller, brokers and the principal's ACL operations on the cluster.

        The first call: fails fast on refused credentials or no route. A refused cluster
        description (CLUSTER_AUTHORIZATION_FAILED) is a denial; the same facts then come from
        the metadata every authenticated principal may read.
        """
        what = "a cluster description"
        future = self._client.describe_cluster(
            include_authorized_operations=True, request_timeout=self._request_timeout
        )
        answers = dict(self._answers({CLUSTER_RESOURCE: future}, what, operation="Describe",
                                     doing="describing the cluster", resource="cluster",
                                     fail_fast=True))
        if not answers:  # refused: a denial, recorded
            return self._cluster_from_metadata()
        result = answers[CLUSTER_RESOURCE]
        # Asked for, Kafka answers the principal's cluster operations when it holds Describe
        # there and none (librdkafka: None) when it does not. Without Describe on the cluster,
        # ListGroups answers only the groups the principal may Describe: silently partial.
        ops = getattr(result, "authorized_operations", None) or ()
        if not {_enum_name(op) for op in ops} & {"DESCRIBE", "ALL"}:
            with self._lock:
                self._denied[AccessDenied("cluster", CLUSTER_RESOURCE, "Describe",
                                          "listing every consumer group")] = None
        controller = getattr(result, "controller", None)
        brokers = tuple(
            sorted(
                (BrokerNode(id=n.id, host=n.host, port=n.port, rack=n.rack or None)
                 for n in result.nodes),
                key=lambda b: b.id,
            )
        )
        return ClusterDescription(
            cluster_id=result.cluster_id,
            controller_id=controller.id if controller is not None else None,
            brokers=brokers,
            authorized_operations=tuple(sorted(_enum_name(op) for op in ops)),
        )

    def _cluster_from_metadata(self) -> ClusterDescription:
        what = "cluster metadata"
        try:
            metadata = self._client.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise map_kafka_error(exc, what, self._servers) from None
        controller = getattr(metadata, "controller_id", -1)
        return ClusterDescription(
            cluster_id=getattr(metadata, "cluster_id", None),
            controller_id=controller if controller is not None and controller >= 0 else None,
            brokers=tuple(sorted(
                (BrokerNode(id=b.id, host=b.host, port=b.port) for b in metadata.brokers.values()),
                key=lambda b: b.id,
            )),
        )

    # -- topics -----------------------------------------------------------------------------

    def list_topic_names(self) -> list[str]:
        """All topic names (one metadata request)."""
        what = "a topic listing"
        try:
            metadata = self._client.list_topics(timeout=self._timeout)
        except KafkaException as exc:
            raise map_kafka_error(exc, what, self._servers) from None
        return sorted(metadata.topics)

    def describe_topics(self, names: Sequence[str]) -> dict[str, TopicDescription]:
        """Partitions (leader, replicas, ISR) and the internal flag, in batches of TOPIC_BATCH."""
        what = "a topic description"
        out: dict[str, TopicDescription] = {}
        for chunk in _chunks(list(names), TOPIC_BATCH):
            futures = self._client.describe_topics(
                TopicCollection(list(chunk)), request_timeout=self._request_timeout
            )
            for name, desc in self._answers(futures, what, operation="Describe",
                                            doing="describing the topic", resource="topic",
                                            name=str):
                out[name] = TopicDescription(
                    name=name,
                    internal=bool(desc.is_internal),
                    partitions=tuple(
                        PartitionDescription(
                            partition=p.id,
                            leader=p.leader.id if p.leader is not None else None,
                            replicas=tuple(r.id for r in p.replicas),
                            isr=tuple(r.id for r in p.isr),
                        )
                        for p in sorted(desc.partitions, key=lambda p: p.id)
                    ),
                )
        return out

    def describe_topic_configs(
        self, names: Sequence[str], only: Collection[str] | None = None
    ) -> dict[str, dict[str, ConfigEntryData]]:
        """Configs of each topic with their source, in batches of CONFIG_BATCH: every config, or
        with ``only`` those keys plus every topic-level override."""
        wanted = frozenset(only) if only is not None else None
        what = "topic configs"
        out: dict[str, dict[str, ConfigEntryData]] = {}
        for chunk in _chunks(list(names), CONFIG_BATCH):
            resources = [ConfigResource(ResourceType.TOPIC, name) for name in chunk]
            futures = self._client.describe_configs(
                resources, request_timeout=self._request_timeout
            )
            for resource, entries in self._answers(futures, what, operation="DescribeConfigs",
                                                   doing="reading its configs", resource="topic",
                                                   name=lambda r: str(r.name)):
                out[resource.name] = {
                    key: ConfigEntryData(
                        name=key,
                        value=None if entry.is_sensitive else entry.value,
                        source=_config_source(entry.source),
                        is_default=bool(entry.is_default),
                        is_sensitive=bool(entry.is_sensitive),
                    )
                    for key, entry in entries.items()
                    if wanted is None or key in wanted
                    or _config_source(entry.source) == "topic"
                }
        return out

    def list_offsets(
        self,
        partitions: Sequence[TopicPartitionKey],
        spec: Literal["earliest", "latest"] | int,
    ) -> dict[TopicPartitionKey, int]:
        """Offsets for many partitions at once: earliest, latest, or the first at a timestamp (ms).

        For a timestamp with no record at or after it, the result is -1 (Kafka's answer).
        """
        what = "partition offsets"
        if spec == "earliest":
            offset_spec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
        elif spec == "latest":
            offset_spec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        else:
            offset_spec = OffsetSpec.for_timestamp(int(spec))
        out: dict[TopicPartitionKey, int] = {}
        for chunk in _chunks(list(partitions), OFFSET_BATCH):
            request = {TopicPartition(t, p): offset_spec for t, p in chunk}
            futures = self._client.list_offsets(request, request_timeout=self._request_timeout)
            for tp, info in self._answers(futures, what, operation="Describe",
                                          doing="reading its offsets", resource="topic",
                                          name=lambda tp: str(tp.topic)):
                out[(tp.topic, tp.partition)] = int(info.offset)
        return out

    # -- consumer groups --------------------------------------------------------------------

    def list_groups(self) -> list[GroupListing]:
        """Every consumer group the principal may see (one request per broker, by librdkafka)."""
        what = "a consumer group listing"
        future = self._client.list_consumer_groups(request_timeout=self._request_timeout)
        self._wait([future], what, fail_fast=False)
        result = self._get(future, what)
        for err in result.errors or []:
            exc = err if isinstance(err, KafkaException) else KafkaException(err)
            if self._deny(exc, operation="Describe", what="listing consumer groups"):
                continue
            log.warning("listing consumer groups: %s", err)
        return sorted(
            (
                GroupListing(
                    group_id=g.group_id,
                    state=_enum_name(g.state),
                    type=_enum_name(getattr(g, "type", "UNKNOWN")),
                    is_simple=bool(g.is_simple_consumer_group),
                )
                for g in result.valid
            ),
            key=lambda g: g.group_id,
        )

    def describe_groups(self, group_ids: Sequence[str]) -> dict[str, GroupDescription]:
        """State, type, assignor and members with assignments, in batches of GROUP_BATCH."""
        what = "a consumer group description"
        out: dict[str, GroupDescription] = {}
        for chunk in _chunks(list(group_ids), GROUP_BATCH):
            futures = self._client.describe_consumer_groups(
                list(chunk), request_timeout=self._request_timeout
            )
            for group_id, desc in self._answers(futures, what, operation="Describe",
                                                doing="describing the group", resource="group",
                                                name=str):
                members = tuple(
                    GroupMemberData(
                        member_id=m.member_id,
                        client_id=m.client_id,
                        host=m.host,
                        assignment=tuple(
                            sorted(
                                (tp.topic, tp.partition)
                                for tp in (m.assignment.topic_partitions if m.assignment else [])
                            )
                        ),
                    )
                    for m in desc.members
                )
                out[group_id] = GroupDescription(
                    group_id=group_id,
                    state=_enum_name(desc.state),
                    type=_enum_name(getattr(desc, "type", "UNKNOWN")),
                    protocol=desc.partition_assignor or None,
                    members=members,
                )
        return out

    def list_group_offsets(
        self, group_ids: Sequence[str]
    ) -> dict[str, dict[TopicPartitionKey, int | None]]:
        """Committed offsets of each group (Kafka's API takes one group per request: pipelined)."""
        what = "committed group offsets"
        out: dict[str, dict[TopicPartitionKey, int | None]] = {}
        for chunk in _chunks(list(group_ids), GROUP_OFFSETS_IN_FLIGHT):
            futures: dict[str, concurrent.futures.Future[Any]] = {}
            for group_id in chunk:
                futures.update(
                    self._client.list_consumer_group_offsets(
                        [ConsumerGroupTopicPartitions(group_id)],
                        request_timeout=self._request_timeout,
                    )
                )
            for group_id, result in self._answers(futures, what, operation="Describe",
                                                  doing="reading its committed offsets",
                                                  resource="group", name=str):
                offsets: dict[TopicPartitionKey, int | None] = {}
                for tp in result.topic_partitions or []:
                    offsets[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
                out[group_id] = offsets
        return out


@functools.lru_cache(maxsize=64)
def _config_source(source: Any) -> str:
    """'default', 'topic', 'broker', ... from a ConfigSource enum (or its int value)."""
    if isinstance(source, int):
        try:
            source = ConfigSource(source)
        except ValueError:
            return "unknown"
    name = _enum_name(source)
    return {
        "DEFAULT_CONFIG": "default",
        "DYNAMIC_TOPIC_CONFIG": "topic",
        "DYNAMIC_BROKER_CONFIG": "broker",
        "DYNAMIC_DEFAULT_BROKER_CONFIG": "cluster",
        "STATIC_BROKER_CONFIG": "static-broker",
        "DYNAMIC_BROKER_LOGGER_CONFIG": "broker-logger",
        "GROUP_CONFIG": "group",
        "UNKNOWN_CONFIG": "unknown",
    }.get(name, name.lower())
