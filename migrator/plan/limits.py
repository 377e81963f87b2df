"""QStash plan limits, and the fit of a plan against them (each violation is a blocker).

The numbers come from the one table in :mod:`migrator.qstash_plans`; this view names them as the
plan file does. Unlimited is ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

from migrator.plan.spec import Blocker, QStashPlanName, Resources, RouteSpec
from migrator.qstash_plans import PLANS

__all__ = ["PLAN_LIMITS", "PlanLimits", "fit"]



@dataclass(frozen=True)
class PlanLimits:
    """What one QStash plan allows."""

    name: QStashPlanName
    max_message_bytes: int
    messages_per_day: int | None
    queues: int
    queue_parallelism: int
    url_groups: int
    endpoints_per_url_group: int
    schedules: int
    max_parallelism: int


def _limits(name: QStashPlanName) -> PlanLimits:
    p = PLANS[name]
    return PlanLimits(name, p.max_message_bytes, p.messages_per_day, p.max_queues, p.max_queue_parallelism,
                      p.max_url_groups, p.max_endpoints_per_group, p.max_schedules, p.max_parallelism)


PLAN_LIMITS: dict[QStashPlanName, PlanLimits] = {n: _limits(n) for n in ("free", "payg", "fixed")}


def fit(
    limits: PlanLimits,
    routes: list[RouteSpec],
    resources: Resources,
    messages_per_day: float,
) -> list[Blocker]:
    """Blockers for every limit of ``limits`` the plan would break."""
    out: list[Blocker] = []
    plan = f"the {limits.name} plan"
    counts = (
        ("queues", len(resources.queues), limits.queues),
        ("URL groups", len(resources.url_groups), limits.url_groups),
        ("schedules", len(resources.schedules), limits.schedules),
    )
    for what, have, cap in counts:
        if have > cap:
            out.append(
                Blocker(
                    code="PLAN_LIMIT",
                    object=f"qstash:{what.replace(' ', '_').lower()}",
                    message=f"the plan needs {have} {what}; {plan} allows {cap}",
                    remedy="choose a larger plan (--qstash-plan) or merge routes",
                )
            )
    for group in resources.url_groups:
        if len(group.endpoints) > limits.endpoints_per_url_group:
            out.append(
                Blocker(
                    code="PLAN_LIMIT",
                    object=f"url_group:{group.name}",
                    message=f"{len(group.endpoints)} endpoints; {plan} allows "
                    f"{limits.endpoints_per_url_group} per URL group",
                    remedy="split the consumers over several URL groups or choose a larger plan",
                )
            )
    for queue in resources.queues:
        if queue.parallelism > limits.queue_parallelism:
            out.append(
                Blocker(
                    code="PLAN_LIMIT",
                    object=f"queue:{queue.name}",
                    message=f"parallelism {queue.parallelism}; {plan} allows "
                    f"{limits.queue_parallelism}",
                    remedy="lower the parallelism or use flow control instead of a queue",
                )
            )
    total_parallelism = sum(r.parallelism or 0 for r in routes)
    if total_parallelism > limits.max_parallelism:
        out.append(
            Blocker(
                code="PLAN_LIMIT",
                severity="warning",
                object="qstash:parallelism",
                message=f"flow-control parallelism adds up to {total_parallelism}; {plan} caps "
                f"global parallelism at {limits.max_parallelism}",
                remedy="messages will wait in the flow-control waitlist; lower per-route "
                "parallelism or choose a larger plan",
            )
        )
    if limits.messages_per_day is not None and messages_per_day > limits.messages_per_day:
        out.append(
            Blocker(
                code="DAILY_QUOTA",
                object="qstash:messages_per_day",
                message=f"about {messages_per_day:,.0f} messages/day expected; {plan} allows "
                f"{limits.messages_per_day:,}",
                remedy="choose pay-as-you-go (--qstash-plan payg) or a larger fixed plan",
            )
        )
    return out
