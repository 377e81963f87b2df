"""One table of QStash tiers: the audit, the migration plan's fit check and the local server all
read the same limits."""

from __future__ import annotations

import dataclasses

from migrator.plan.builder import PlanOptions, build_plan
from migrator.plan.endpoints import EndpointMap
from migrator.qstash_tiers import MIB, TIERS, TierLimits
from qstash_server.settings import ServerSettings
from tests.plan.factories import group, inventory, topic


def test_one_limits_type_for_every_tier() -> None:
    assert set(TIERS) == {"free", "payg", "fixed"}
    assert all(type(t) is TierLimits and t.name == name for name, t in TIERS.items())
    assert [TIERS[n].max_message_bytes for n in ("free", "payg", "fixed")] == [MIB, 10 * MIB, 50 * MIB]


def test_the_plans_fit_check_reads_the_tier_table() -> None:
    # two fanned-out topics need two URL groups; the free tier allows max_url_groups of them
    inv = inventory([topic("a"), topic("b")],
                    [group("g1", "a", "b"), group("g2", "a", "b")])
    free = build_plan(inv, EndpointMap.empty(), PlanOptions(qstash_tier="free"))
    assert [b.object for b in free.blockers if b.code == "PLAN_LIMIT"] == ["qstash:url_groups"]
    assert f"allows {TIERS['free'].max_url_groups}" in free.blockers[0].message
    payg = build_plan(inv, EndpointMap.empty(), PlanOptions(qstash_tier="payg"))
    assert not [b for b in payg.blockers if b.code == "PLAN_LIMIT"]


def test_the_local_server_enforces_the_same_table() -> None:
    for name, tier in TIERS.items():
        assert dataclasses.asdict(ServerSettings(plan=name).limits) == dataclasses.asdict(tier)
