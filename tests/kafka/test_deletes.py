"""The cutover admin's deletes (``cutover finish --delete``) against the real broker: topics and
empty groups go, a group with a live member is refused as GroupNotEmptyError (exit 12), a topic
that is not there is a toolkit error naming it (never a raw librdkafka exception)."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer

from migrator.config import KafkaConnection
from migrator.errors import GroupNotEmptyError, MigratorError
from migrator.kafka.group_offsets import GroupOffsetAdmin
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.stack import EstateInfo
from tests.fixtures.wait import wait_until


def test_deletes_topics_and_groups_and_refuses_a_live_group(
        kafka_stack: EstateInfo, kafka: KafkaKit) -> None:
    topic = kafka.create_topic(unique("del"), 1)
    kafka.produce(topic, [Rec(b"v")])
    empty = unique("del-empty")
    kafka.commit_group(empty, {(topic, 0): 1})
    live = unique("del-live")
    member = Consumer({"bootstrap.servers": kafka_stack.bootstrap_servers, "group.id": live,
                       "auto.offset.reset": "earliest", "enable.auto.commit": False})
    admin = GroupOffsetAdmin(KafkaConnection(bootstrap_servers=kafka_stack.bootstrap_servers),
                             timeout=20)
    try:
        member.subscribe([topic])
        wait_until(lambda: (member.poll(0.2), member.assignment())[1], until=bool,
                   what=f"a live member of {live} owning {topic}")
        with pytest.raises(GroupNotEmptyError, match=f"deleting consumer group '{live}'"):
            admin.delete_groups([live])
        assert live in {g.group_id for g in admin.list_groups()}

        assert admin.delete_groups([empty]) == [empty]
        wait_until(lambda: {g.group_id for g in admin.list_groups()},
                   until=lambda ids: empty not in ids, what=f"group {empty} gone")
        assert admin.delete_topics([topic]) == [topic]
        wait_until(lambda: admin.describe_topics([topic]), until=lambda d: not d,
                   what=f"topic {topic} gone")

        missing = unique("del-missing")
        with pytest.raises(MigratorError, match=f"deleting topic '{missing}'"):
            admin.delete_topics([missing])
        assert admin.delete_topics([]) == [] and admin.delete_groups([]) == []
    finally:
        member.close()
        admin.close()
