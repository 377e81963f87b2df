"""The fit of a migration plan against a QStash tier's limits: each violation is a blocker.

The limits are the one table in :mod:`migrator.qstash_tiers`. Unlimited is ``None``.
"""

from __future__ import annotations

from migrator.finding_codes import plan_severity
from migrator.plan.spec import Blocker, Resources, RouteSpec
from migrator.qstash_tiers import TierLimits

__all__ = ["fit"]


def fit(
    limits: TierLimits,
    routes: list[RouteSpec],
    resources: Resources,
    messages_per_day: float,
) -> list[Blocker]:
    """Blockers for every limit of ``limits`` the plan would break."""
    out: list[Blocker] = []
    tier = f"the {limits.name} plan"  # Upstash's word for a tier, in user-facing text
    counts = (
        ("queues", len(resources.queues), limits.max_queues),
        ("URL groups", len(resources.url_groups), limits.max_url_groups),
        ("schedules", len(resources.schedules), limits.max_schedules),
    )
    for what, have, cap in counts:
        if have > cap:
            out.append(
                Blocker(
                    code="PLAN_LIMIT",
                    object=f"qstash:{what.replace(' ', '_').lower()}",
                    message=f"the plan needs {have} {what}; {tier} allows {cap}",
                    remedy="choose a larger plan (--qstash-plan) or merge routes",
                )
            )
    for group in resources.url_groups:
        if len(group.endpoints) > limits.max_endpoints_per_group:
            out.append(
                Blocker(
                    code="PLAN_LIMIT",
                    object=f"url_group:{group.name}",
                    message=f"{len(group.endpoints)} endpoints; {tier} allows "
                    f"{limits.max_endpoints_per_group} per URL group",
                    remedy="split the consumers over several URL groups or choose a larger plan",
                )
            )
    for queue in resources.queues:
        if queue.parallelism > limits.max_queue_parallelism:
            out.append(
                Blocker(
                    code="PLAN_LIMIT",
                    object=f"queue:{queue.name}",
                    message=f"parallelism {queue.parallelism}; {tier} allows "
                    f"{limits.max_queue_parallelism}",
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
                message=f"flow-control parallelism adds up to {total_parallelism}; {tier} caps "
                f"global parallelism at {limits.max_parallelism}",
                remedy="messages will wait in the flow-control waitlist; lower per-route "
                "parallelism or choose a larger plan",
            )
        )
    if limits.messages_per_day is not None and messages_per_day > limits.messages_per_day:
        out.append(
            Blocker(
                code="DAILY_QUOTA",
                severity=plan_severity("DAILY_QUOTA"),
                object="qstash:messages_per_day",
                message=f"about {messages_per_day:,.0f} messages/day expected; {tier} allows "
                f"{limits.messages_per_day:,}",
                remedy="choose pay-as-you-go (--qstash-plan payg) or a larger fixed plan",
            )
        )
    return out
