"""The one messages/day estimate (pure): which topics count, fan-out, how each was measured, and
the plan pricing retries on top of the same figure."""

from __future__ import annotations

import pytest

from migrator.plan.builder import PlanOptions, build_plan
from migrator.plan.endpoints import EndpointMap
from migrator.volume import RULE, estimate_volume
from tests.plan.factories import group, inventory, topic


def test_only_topics_that_move_count_and_each_reader_is_a_delivery() -> None:
    topics = [topic("orders", rps=0.01), topic("orders.DLQ", rps=5.0), topic("orders-retry", rps=5.0),
              topic("__consumer_offsets", rps=5.0), topic("connect-status", rps=5.0),
              topic("app-store-changelog", rps=5.0), topic("unread", rps=0.001)]
    inv = inventory(topics, [group("a", "orders"), group("b", "orders"),
                             group("app", "app-store-changelog")])
    volume = estimate_volume(inv)
    assert {v.topic: (v.records_per_day, v.fan_out) for v in volume.topics} == {
        "orders": (864, 2), "unread": (86, 1)}
    assert volume.messages_per_day == 864 * 2 + 86


def test_the_larger_measure_wins_and_the_basis_says_which() -> None:
    day = topic("day", rps=0.001).model_copy(update={"records_last_24h": 5000})
    rate = topic("rate", rps=1.0).model_copy(update={"records_last_24h": 10})
    inv = inventory([day, rate], [group("g", "day", "rate")])
    volume = estimate_volume(inv)
    assert {v.topic: (v.records_per_day, v.measured_by) for v in volume.topics} == {
        "day": (5000, "last 24 h"), "rate": (86_400, "throughput sample")}
    assert volume.explanation.startswith(RULE)
    assert "1 topic(s) by last 24 h" in volume.explanation
    assert "no throughput sample" not in volume.explanation


def test_without_a_sample_the_reports_say_what_to_run() -> None:
    unsampled = topic("t", rps=None).model_copy(update={"records_last_24h": 300})
    volume = estimate_volume(inventory([unsampled], [group("g", "t")]))
    assert volume.messages_per_day == 300
    assert volume.explanation.endswith("no throughput sample: run audit with --sample-seconds")
    assert volume.basis.startswith("about 300 messages/day over 1 topic(s)")


@pytest.mark.parametrize("dlq", ["orders.DLQ", "dlq.orders", "orders-dead-letters"])
def test_the_plan_prices_retries_on_top_of_the_same_figure(dlq: str) -> None:
    # 10 dead-lettered of 100 consumed records: a 10% retry rate, whichever way the DLQ is named
    inv = inventory([topic("orders", records=100, partitions=1, rps=1.0), topic(dlq, records=10, partitions=1)],
                    [group("g", "orders")])
    plan = build_plan(inv, EndpointMap.empty(), PlanOptions(qstash_tier="payg"))
    assert plan.cost is not None
    assert plan.cost.messages_per_day == estimate_volume(inv).messages_per_day == 86_400
    assert plan.cost.retry_rate == pytest.approx(0.1)
    assert plan.cost.messages_with_retries_per_day == pytest.approx(95_040)
