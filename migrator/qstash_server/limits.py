"""Plan limits (upstash.com/pricing/qstash), enforced with QStash's own status codes."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PLANS", "PlanLimits"]


@dataclass(frozen=True)
class PlanLimits:
    """One plan's limits. ``None`` means unlimited."""

    name: str
    max_message_bytes: int
    messages_per_day: int | None
    max_queues: int
    max_queue_parallelism: int
    max_schedules: int
    max_url_groups: int
    max_endpoints_per_group: int
    max_delay_s: int | None
    max_response_duration_s: int
    dlq_retention_s: int


_DAY = 86_400

PLANS: dict[str, PlanLimits] = {
    "free": PlanLimits(
        name="free",
        max_message_bytes=1_000_000,
        messages_per_day=1_000,
        max_queues=10,
        max_queue_parallelism=2,
        max_schedules=10,
        max_url_groups=1,
        max_endpoints_per_group=100,
        max_delay_s=7 * _DAY,
        max_response_duration_s=15 * 60,
        dlq_retention_s=3 * _DAY,
    ),
    "payg": PlanLimits(
        name="payg",
        max_message_bytes=10_000_000,
        messages_per_day=None,
        max_queues=100,
        max_queue_parallelism=10,
        max_schedules=1_000,
        max_url_groups=100,
        max_endpoints_per_group=100,
        max_delay_s=365 * _DAY,
        max_response_duration_s=2 * 3600,
        dlq_retention_s=7 * _DAY,
    ),
    "fixed": PlanLimits(
        name="fixed",
        max_message_bytes=50_000_000,
        messages_per_day=1_000_000,
        max_queues=1_000,
        max_queue_parallelism=10,
        max_schedules=10_000,
        max_url_groups=1_000,
        max_endpoints_per_group=1_000,
        max_delay_s=None,
        max_response_duration_s=6 * 3600,
        dlq_retention_s=30 * _DAY,
    ),
}
