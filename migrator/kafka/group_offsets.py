"""The Kafka writes of the cutover: committed offsets, its compacted topics, the decommission.

:class:`GroupOffsetAdmin` extends the read-only :class:`~migrator.kafka.admin.KafkaAdmin` with
the writes the cutover needs: ``AlterConsumerGroupOffsets`` (Kafka refuses it for a group that
has members, which is the guarantee the cutover relies on: a live group is never altered),
creating a compacted topic when it is missing, and deleting the routed topics and replaced
groups once everything is off Kafka (``cutover finish --delete``). Errors become toolkit
errors: a refused ACL is :class:`~migrator.errors.KafkaAuthError`, a group with members
:class:`GroupNotEmptyError`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AclOperation, NewTopic  # type: ignore[attr-defined]

from migrator.errors import GroupNotEmptyError, KafkaAuthError
from migrator.kafka.admin import KafkaAdmin
from migrator.kafka.answers import map_kafka_error
from migrator.kafka.descriptions import TopicPartitionKey
from migrator.kafka.errors import is_authorization_error

__all__ = ["GroupOffsetAdmin"]

log = logging.getLogger(__name__)

_NOT_EMPTY = frozenset({
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
})
# Seconds the controller may take to delete topics before it answers.
_DELETE_TIMEOUT = 30.0


class GroupOffsetAdmin(KafkaAdmin):
    """:class:`KafkaAdmin` plus altering committed offsets and creating compacted topics."""

    def alter_group_offsets(self, group: str, offsets: Mapping[TopicPartitionKey, int]) -> None:
        """Set ``group``'s committed offsets (next offset to read) for exactly these partitions."""
        if not offsets:
            return
        what = f"altering the committed offsets of group {group!r}"
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(t, p, int(o)) for (t, p), o in sorted(offsets.items())]
        )
        futures = self._client.alter_consumer_group_offsets(
            [request], request_timeout=self._request_timeout
        )
        self._wait(futures.values(), what, fail_fast=False)
        for future in futures.values():
            try:
                result = future.result(timeout=0)
            except KafkaException as exc:
                raise self._alter_error(exc, group, what) from None
            for tp in result.topic_partitions or []:
                err = getattr(tp, "error", None)
                if err is not None:
                    raise self._alter_error(KafkaException(err), group, what)

    def require_may_alter(self, group: str) -> None:
        """Raise :class:`KafkaAuthError` (the same words as a refused write) when Kafka says this
        principal may not set ``group``'s offsets (Read on the group), so that a step refuses
        before it changes anything rather than half-way. Kafka answers with the principal's
        authorized operations on the group; a cluster without an authorizer (or one that does
        not say) lets the write itself decide."""
        what = f"altering the committed offsets of group {group!r}"
        future = self._client.describe_consumer_groups(
            [group], request_timeout=self._request_timeout, include_authorized_operations=True
        )[group]
        self._wait([future], what, fail_fast=False)
        try:
            ops = future.result(timeout=0).authorized_operations
        except KafkaException as exc:
            raise self._alter_error(exc, group, what) from None
        if ops is not None and not {AclOperation.READ, AclOperation.ALL} & set(ops):
            raise self._alter_error(
                KafkaException(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)), group, what)

    def _alter_error(self, exc: KafkaException, group: str, what: str) -> Exception:
        kerr = exc.args[0] if exc.args else None
        code = kerr.code() if isinstance(kerr, KafkaError) else None
        if code in _NOT_EMPTY:
            return GroupNotEmptyError(
                f"Kafka refused {what}: the group has members ({kerr.str() if kerr else exc}); "
                "it must be empty."
            )
        if code is not None and is_authorization_error(code):
            return KafkaAuthError(
                f"Kafka at {self._servers} refused {what}: {kerr.str() if kerr else exc}. The "
                f"principal needs Read on group {group!r} and Describe on its topics; nothing "
                "was changed."
            )
        return map_kafka_error(exc, what, self._servers)

    def ensure_compacted_topic(self, name: str, *, replication_factor: int = -1) -> bool:
        """Create ``name`` (1 partition, cleanup.policy=compact) unless it exists; True if created."""
        if name in self.describe_topics([name]):
            return False
        what = f"creating topic {name!r}"
        topic = NewTopic(name, num_partitions=1, replication_factor=replication_factor,
                         config={"cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"})
        futures: dict[str, Any] = self._client.create_topics(
            [topic], request_timeout=self._request_timeout
        )
        self._wait(futures.values(), what, fail_fast=False)
        try:
            futures[name].result(timeout=0)
        except KafkaException as exc:
            kerr = exc.args[0] if exc.args else None
            if isinstance(kerr, KafkaError) and kerr.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return False
            if isinstance(kerr, KafkaError) and is_authorization_error(kerr.code()):
                raise KafkaAuthError(
                    f"Kafka at {self._servers} refused {what}: {kerr.str()}. Create it by hand "
                    "(one partition, cleanup.policy=compact) or grant Create."
                ) from None
            raise map_kafka_error(exc, what, self._servers) from None
        log.info("created compacted topic %s", name)
        return True

    def delete_topics(self, names: Sequence[str]) -> list[str]:
        """Delete the topics ``names`` (one request); returns them, or raises the toolkit's error
        for the first one Kafka refused (some of the others may be deleted by then)."""
        if not names:
            return []
        futures: dict[str, Any] = self._client.delete_topics(
            list(names), operation_timeout=_DELETE_TIMEOUT, request_timeout=self._request_timeout
        )
        return self._deleted(futures, "topic", "Delete on the topic")

    def delete_groups(self, ids: Sequence[str]) -> list[str]:
        """Delete the consumer groups ``ids`` (one request; Kafka refuses a group with members:
        :class:`GroupNotEmptyError`); returns them, or raises for the first one refused."""
        if not ids:
            return []
        futures: dict[str, Any] = self._client.delete_consumer_groups(
            list(ids), request_timeout=self._request_timeout
        )
        return self._deleted(futures, "consumer group", "Delete on the group")

    def _deleted(self, futures: Mapping[str, Any], kind: str, acl: str) -> list[str]:
        self._wait(futures.values(), f"deleting {kind}s", fail_fast=False)
        for name, future in futures.items():
            what = f"deleting {kind} {name!r}"
            try:
                future.result(timeout=0)
            except KafkaException as exc:
                kerr = exc.args[0] if exc.args else None
                code = kerr.code() if isinstance(kerr, KafkaError) else None
                if code == KafkaError.NON_EMPTY_GROUP:
                    raise GroupNotEmptyError(
                        f"Kafka refused {what}: the group has members; stop its consumers "
                        "and run it again."
                    ) from None
                if code is not None and is_authorization_error(code):
                    raise KafkaAuthError(
                        f"Kafka at {self._servers} refused {what}: {kerr.str() if kerr else exc}."
                        f" The principal needs {acl}."
                    ) from None
                raise map_kafka_error(exc, what, self._servers) from None
        return list(futures)
