"""Ordered topics in the plan: FIFO queues within each tier's queue budget, each partition to
exactly one queue; the ORDERED_CAPACITY blocker where the queues cannot carry the rate and not
elsewhere; best effort only when the endpoint file asks, said in words."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from migrator.bridge.config import EnqueueQueueDestination
from migrator.errors import ConfigError
from migrator.plan.builder import PlanOptions, build_plan
from migrator.plan.endpoints import EndpointFile, EndpointMap, load_endpoints
from migrator.plan.render import render
from migrator.plan.scaffold import bridge_config, runbook
from migrator.plan.spec import Plan
from migrator.qstash_tiers import TierName

from .factories import group, inventory, topic

TIER_QUEUES = {"free": 10, "payg": 100, "fixed": 1_000}


def _plan(topics: list[tuple[str, int, float]], groups: int, tier: TierName,
          ordering: dict[str, str] | None = None, latency: dict[str, float] | None = None) -> Plan:
    """``topics`` = (name, partitions, rec/s), all keyed, each read by ``groups`` groups
    g0..g<n> mapped to endpoints."""
    inv = inventory([topic(n, partitions=p, keyed=1.0, rps=r) for n, p, r in topics],
                    [group(f"g{i}", *(n for n, _, _ in topics)) for i in range(groups)])
    eps = EndpointMap(EndpointFile(groups={"*": "https://e.example.com/{group}/{topic}"},
                                   ordering=ordering or {}, latency_ms=latency or {}))
    return build_plan(inv, eps, PlanOptions(qstash_tier=tier))


def _check_mapping(plan: Plan, partitions: dict[str, int]) -> dict[str, int]:
    """Through the generated bridge config: every partition of every ordered topic goes to
    exactly one planned queue per group, every planned queue is used, and a queue carries at
    most ceil(partitions / queues) partitions. Returns topic -> queues per group."""
    config, left_out = bridge_config(plan)
    assert config is not None and left_out == []
    planned = {q.name for q in plan.resources.queues}
    assert all(q.parallelism == 1 for q in plan.resources.queues)
    used: set[str] = set()
    counts: dict[str, int] = {}
    for route in config.routes:
        assert route.ordered
        for dest in route.destinations:
            assert isinstance(dest, EnqueueQueueDestination)
            load: dict[str, int] = {}
            for p in range(partitions[route.topic]):
                name = dest.queue_name(route.topic, p)
                assert name in planned, f"{route.topic}[{p}] -> {name}, not a planned queue"
                load[name] = load.get(name, 0) + 1
            assert dest.queues is not None and len(load) == dest.queues
            assert max(load.values()) == math.ceil(partitions[route.topic] / dest.queues)
            used |= set(load)
            counts[route.topic] = dest.queues
    assert used == planned
    return counts


@pytest.mark.parametrize("tier", ["free", "payg", "fixed"])
def test_a_queue_per_partition_and_group_when_the_budget_allows(tier: TierName) -> None:
    budget = TIER_QUEUES[tier]
    partitions = budget // 4  # 2 groups x 2 topics x budget/4: (almost) the whole budget
    plan = _plan([("a", partitions, 1.0), ("b", partitions, 1.0)], 2, tier)
    counts = _check_mapping(plan, {"a": partitions, "b": partitions})
    assert counts == {"a": partitions, "b": partitions}
    assert len(plan.resources.queues) == 4 * partitions > budget - 4
    assert not [b for b in plan.blockers if b.code in ("PLAN_LIMIT", "ORDERED_CAPACITY")]
    assert {r.pattern for r in plan.routes} == {"fifo_queue"}


@pytest.mark.parametrize("tier", ["free", "payg", "fixed"])
def test_more_partitions_x_groups_than_queues_share_queues_within_the_budget(
    tier: TierName,
) -> None:
    budget = TIER_QUEUES[tier]
    # 3 groups x (P + P + 6) partitions, far above the budget; rates differ
    p = budget
    plan = _plan([("busy", p, 100.0), ("calm", p, 1.0), ("small", 6, 1.0)], 3, tier)
    counts = _check_mapping(plan, {"busy": p, "calm": p, "small": 6})
    assert len(plan.resources.queues) <= budget
    assert all(1 <= n <= parts for n, parts in zip(
        (counts["busy"], counts["calm"], counts["small"]), (p, p, 6), strict=True))
    assert counts["busy"] >= counts["calm"]  # the busier topic gets the larger share
    assert sum(counts.values()) * 3 > budget // 2  # the budget is used, not left idle
    assert not [b for b in plan.blockers if b.code == "PLAN_LIMIT"]
    busy = next(r for r in plan.routes if r.topic == "busy")
    assert f"partitions share queues: the {tier} plan allows {budget} queues" in busy.reason


def test_free_tier_shares_twelve_partitions_over_six_queues() -> None:
    plan = _plan([("t", 12, 1.0)], 1, "free")
    # 10 queues would still put two partitions on some queue; 6 do that with fewer queues
    assert _check_mapping(plan, {"t": 12}) == {"t": 6}
    assert [q.name for q in plan.resources.queues] == [f"t-{i}" for i in range(6)]
    config, _ = bridge_config(plan)
    assert config is not None
    (dest,) = config.routes[0].destinations
    assert isinstance(dest, EnqueueQueueDestination)
    assert (dest.queue, dest.queues) == ("t-{index}", 6)
    assert [dest.queue_name("t", p) for p in (0, 6, 5, 11)] == ["t-0", "t-0", "t-5", "t-5"]


def test_more_routes_x_groups_than_queues_is_a_plan_limit() -> None:
    plan = _plan([(f"t{i}", 2, 1.0) for i in range(4)], 3, "free")  # 12 pairs, 10 queues
    assert len(plan.resources.queues) == 12
    (limit,) = [b for b in plan.blockers if b.code == "PLAN_LIMIT"]
    assert limit.object == "qstash:queues" and "12 queues" in limit.message


def test_capacity_blocker_fires_where_the_queues_cannot_carry_the_rate() -> None:
    # 4 partitions at 100 ms per round trip: about 40 rec/s
    plan = _plan([("fast", 4, 50.0), ("ok", 4, 39.0)], 1, "payg")
    (blocker,) = [b for b in plan.blockers if b.code == "ORDERED_CAPACITY"]
    assert blocker.object == "topic:fast" and blocker.severity == "blocker"
    assert "50 rec/s must arrive in order" in blocker.message
    assert "4 FIFO queues" in blocker.message and "about 40 rec/s at 100 ms" in blocker.message
    assert "at most 80 ms per round trip" in blocker.remedy
    assert "ordering: g0: best_effort" in blocker.remedy and "more queues" not in blocker.remedy
    fast = next(r for r in plan.routes if r.topic == "fast")
    assert fast.ordering is not None and fast.ordering.capacity == {"g0": 40.0}
    assert "about 40 rec/s at 100 ms per endpoint round trip, 50 rec/s observed" in fast.reason


def test_capacity_uses_the_endpoint_files_latency_per_group() -> None:
    plan = _plan([("t", 4, 50.0)], 2, "payg", latency={"g0": 50, "g1": 250})
    blockers = [b for b in plan.blockers if b.code == "ORDERED_CAPACITY"]
    assert [b.message.split(":")[0] for b in blockers] == ["group g1"]  # 16 rec/s < 50
    route = plan.routes[0]
    assert route.ordering is not None and route.ordering.capacity == {"g0": 80.0, "g1": 16.0}


def test_capacity_blocker_offers_more_queues_when_the_budget_shared_them() -> None:
    payg = _plan([("t", 12, 100.0)], 1, "payg")  # 12 queues: 120 rec/s
    assert not [b for b in payg.blockers if b.code == "ORDERED_CAPACITY"]
    free = _plan([("t", 12, 100.0)], 1, "free")  # 6 queues: 60 rec/s
    (blocker,) = [b for b in free.blockers if b.code == "ORDERED_CAPACITY"]
    assert "more queues, up to 12" in blocker.remedy and "larger --qstash-plan" in blocker.remedy


def test_no_capacity_blocker_without_an_observed_rate_or_for_best_effort() -> None:
    assert not [b for b in _plan([("t", 2, 0.0)], 1, "payg").blockers
                if b.code == "ORDERED_CAPACITY"]
    plan = _plan([("t", 2, 500.0)], 1, "payg", ordering={"g0": "best_effort"})
    assert not [b for b in plan.blockers if b.code == "ORDERED_CAPACITY"]


def test_best_effort_is_opt_in_per_group_and_said_in_words() -> None:
    plan = _plan([("t", 3, 1.0)], 2, "payg", ordering={"g1": "best_effort"})
    route = plan.routes[0]
    assert route.pattern == "fifo_queue" and route.ordering is not None
    assert route.ordering.best_effort == ["g1"] and route.ordering.queues == 3
    assert [q.name for q in plan.resources.queues] == [f"t.g0-{i}" for i in range(3)]
    config, _ = bridge_config(plan)
    assert config is not None
    kinds = {d.kind: d for d in config.routes[0].destinations}
    fc = kinds["publish-url"]
    assert fc.kind == "publish-url" and fc.flow_control is not None
    assert (fc.flow_control.key, fc.flow_control.parallelism) == ("{topic}.g1-{key}", 1)
    (warning,) = [b for b in plan.blockers if b.code == "ORDERING_BEST_EFFORT"]
    assert warning.severity == "warning" and "order can break on a retry" in warning.message
    review = render(plan)
    assert "best effort for g1" in review and "order can break on a retry" in review
    text = runbook(plan, plan_file="plan.yaml", bridge_file="bridge.yaml", left_out=[],
                   endpoints_file=None, inventory_file=None)
    assert "**Order can break on a retry** for t" in text
    assert "retrying it from the DLQ delivers it last" in text


def test_every_group_best_effort_makes_a_flow_control_route() -> None:
    plan = _plan([("t", 3, 1.0)], 1, "payg", ordering={"*": "best_effort"})
    route = plan.routes[0]
    assert route.pattern == "flow_control" and plan.resources.queues == []
    assert "best effort" in route.reason and "order can break on a retry" in route.reason


def test_endpoint_file_ordering_and_latency_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.yaml"
    path.write_text("groups:\n  g0: https://e.example.com/x\nordering:\n  g9: best_effort\n")
    with pytest.raises(ConfigError, match=r"endpoints.yaml:4: ordering.g9: unknown consumer group"):
        load_endpoints(path, groups=["g0"])
    path.write_text("ordering:\n  g0: loose\n")
    with pytest.raises(ConfigError, match=r"endpoints.yaml:2: ordering.g0"):
        load_endpoints(path, groups=["g0"])
    path.write_text("latency_ms:\n  g0: 0\n")
    with pytest.raises(ConfigError, match=r"latency_ms.g0"):
        load_endpoints(path, groups=["g0"])
    path.write_text("latency_ms:\n  g*: 40\nordering:\n  g0: best_effort\n")
    eps = load_endpoints(path, groups=["g0", "g1"])
    assert (eps.latency_ms("g1"), eps.ordering("g0"), eps.ordering("g1")) == (
        40, "best_effort", "strict")
    assert EndpointMap.empty().latency_ms("x") == 100
