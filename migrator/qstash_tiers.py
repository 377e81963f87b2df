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


# One row per tier, the columns in TierLimits' field order (positional: each number stands
# under its column's name).
TIERS: dict[str, TierLimits] = {t.name: t for t in (  # keyed by TierName
    #          name     message  msgs/day   queues queue schedules URL  endpoints max delay  response DLQ kept  paral-
    #                   size                       par.          groups per group                              lelism
    TierLimits("free",  1 * MIB,  1_000,     10,    2,    10,     1,     100,      7 * _DAY,  15 * 60, 3 * _DAY,  10),
    TierLimits("payg",  10 * MIB, None,      100,   10,   1_000,  100,   100,    365 * _DAY, 2 * 3600, 7 * _DAY,  100),
    TierLimits("fixed", 50 * MIB, 1_000_000, 1_000, 10,   10_000, 1_000, 1_000,    None,     6 * 3600, 30 * _DAY, 200),
)}
