"""One topic classification for the audit and the plan: each name's role, and both commands
acting on it the same way (the audit flags what the plan absorbs, and skips what it skips)."""

from __future__ import annotations

import pytest

from migrator.audit.findings import evaluate, readers_by_topic
from migrator.plan.builder import PlanOptions, build_plan
from migrator.plan.endpoints import EndpointMap
from migrator.topic_roles import TopicRole, classify, dead_letter_base, is_internal, readers
from tests.plan.factories import connector, group, inventory, topic

ROLES: list[tuple[str, TopicRole, str | None]] = [
    # dead-letter topics, the word before or after the base, or alone
    ("orders.DLQ", "dead-letter", "orders"),
    ("dlq.orders", "dead-letter", "orders"),
    ("orders-dead-letters", "dead-letter", "orders"),
    ("orders_dead_letter_queue", "dead-letter", "orders"),
    ("orders-dlt", "dead-letter", "orders"),
    ("DeadLetter-orders", "dead-letter", "orders"),
    ("dead-letter-queue", "dead-letter", None),
    ("payments.dlq", "dead-letter", None),  # its base topic is not in the estate
    # retry topics of a topic of the estate
    ("orders-retry", "retry", "orders"),
    ("orders.retry.2", "retry", "orders"),
    ("orders_retry_10", "retry", "orders"),
    ("billing-retry", "data", None),  # no topic "billing": an ordinary topic
    # internal topics
    ("__consumer_offsets", "internal", None),
    ("__transaction_state", "internal", None),
    ("__anything", "internal", None),
    ("_schemas", "internal", None),
    ("_confluent-metrics", "internal", None),
    ("_connect-configs", "internal", None),
    ("connect-configs", "internal", None),
    ("connect-offsets", "internal", None),
    ("connect-status", "internal", None),
    ("connect_cluster-config", "internal", None),
    # Kafka Streams internals (the application's group "app" exists) and look-alikes
    ("app-store-changelog", "streams-internal", None),
    ("app-KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition", "streams-internal", None),
    ("users-changelog", "data", None),
    # ordinary topics that merely contain the words
    ("deadline-events", "data", None),
    ("connectors-audit", "data", None),
    ("retry-policies", "data", None),
    ("orders", "data", None),
]
NAMES = [name for name, _, _ in ROLES]


def _estate() -> tuple[list[str], list[str]]:
    return NAMES, ["app", "fulfilment"]


@pytest.mark.parametrize(("name", "role", "serves"), ROLES)
def test_each_name_has_one_role(name: str, role: TopicRole, serves: str | None) -> None:
    inv = inventory([topic(n) for n in NAMES], [group("app", "orders")])
    got = classify(inv)[name]
    assert (got.role, got.serves) == (role, serves)


def test_the_broker_internal_flag_wins_and_a_connector_names_its_dead_letter_topic() -> None:
    assert is_internal("orders", kafka_internal=True) and not is_internal("orders")
    inv = inventory([topic("orders"), topic("sink-errors")], [group("g", "orders")],
                    connectors=[connector("s", "sink", ["orders"],
                                          **{"errors.deadletterqueue.topic.name": "sink-errors"})])
    got = classify(inv)["sink-errors"]
    assert (got.role, got.serves) == ("dead-letter", "orders")
    assert dead_letter_base("sink-errors") is None  # the connector, not the name, says so


def test_readers_are_groups_with_an_offset_or_an_assignment() -> None:
    offsets_only = group("billing", "orders").model_copy(update={"topics": []})
    inv = inventory([topic("orders")], [group("z-app", "orders"), offsets_only])
    assert [g.group_id for g in readers(inv)["orders"]] == ["billing", "z-app"]
    assert readers_by_topic(inv) == {"orders": ["billing", "z-app"]}


def test_the_audit_and_the_plan_agree_on_every_name() -> None:
    groups = [group("app", "orders", "app-store-changelog"), group("fulfilment", *NAMES)]
    inv = inventory([topic(n) for n in NAMES], groups)
    audit = evaluate(inv)
    flagged_dlq = {f.object.removeprefix("topic:") for f in audit if f.code == "DEAD_LETTER_TOPIC"}
    flagged_streams = {f.object.removeprefix("topic:") for f in audit
                       if f.code == "STREAMS_INTERNAL_TOPIC"}
    touched = {f.object.removeprefix("topic:") for f in audit if f.object.startswith("topic:")}
    plan = build_plan(inv, EndpointMap.empty(), PlanOptions())
    patterns = {r.topic: r.pattern for r in plan.routes}
    for name, role, _ in ROLES:
        assert (name in flagged_dlq) == (role == "dead-letter"), name
        assert (name in flagged_streams) == (role == "streams-internal"), name
        if role == "internal":
            assert patterns[name] == "internal" and name not in touched, name
        if role in ("retry", "dead-letter"):
            assert patterns[name] == "absorbed", name
        if role == "data":
            assert patterns[name] not in ("absorbed", "internal"), name
