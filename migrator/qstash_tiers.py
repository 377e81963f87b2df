"""QStash's pricing tiers and their limits: one table for the audit's findings, the migration
plan's fit check and the local QStash server's enforcement.

Upstash calls these "plans" (free, pay as you go, fixed); in code they are *tiers*, so that "plan"
means only the migration plan. The user-facing names stay Upstash's (``--qstash-plan``, the
``qstash_plan`` field of inventories and plans).

Numbers from Upstash's pricing data (shared/reference/qstash.md section 6.1); ``fixed`` is the
Fixed 1M tier. The pricing page says "1 MB" / "10 MB" / "50 MB"; sizes are taken as MiB everywhere
(one reading, so an audit, a plan and the local server never disagree about a record).
``None`` means unlimited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["MIB", "TIERS", "TierLimits", "TierName"]

TierName = Literal["free", "payg", "fixed"]

MIB = 1024 * 1024
_DAY = 86_400


@dataclass(frozen=True)
class TierLimits:
    """One tier's limits. ``None`` means unlimited."""

    name: TierName
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
    max_parallelism: int
    """The global parallelism cap ("Parallelism" on the pricing page)."""


TIERS: dict[str, TierLimits] = {  # keyed by TierName
    "free": TierLimits(
        name="free",
        max_message_bytes=1 * MIB,
        messages_per_day=1_000,
        max_queues=10,
        max_queue_parallelism=2,
        max_schedules=10,
        max_url_groups=1,
        max_endpoints_per_group=100,
        max_delay_s=7 * _DAY,
        max_response_duration_s=15 * 60,
        dlq_retention_s=3 * _DAY,
        max_parallelism=10,
    ),
    "payg": TierLimits(
        name="payg",
        max_message_bytes=10 * MIB,
        messages_per_day=None,
        max_queues=100,
        max_queue_parallelism=10,
        max_schedules=1_000,
        max_url_groups=100,
        max_endpoints_per_group=100,
        max_delay_s=365 * _DAY,
        max_response_duration_s=2 * 3600,
        dlq_retention_s=7 * _DAY,
        max_parallelism=100,
    ),
    "fixed": TierLimits(
        name="fixed",
        max_message_bytes=50 * MIB,
        messages_per_day=1_000_000,
        max_queues=1_000,
        max_queue_parallelism=10,
        max_schedules=10_000,
        max_url_groups=1_000,
        max_endpoints_per_group=1_000,
        max_delay_s=None,
        max_response_duration_s=6 * 3600,
        dlq_retention_s=30 * _DAY,
        max_parallelism=200,
    ),
}
