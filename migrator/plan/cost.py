"""Cost estimate: the estate's messages per day (:mod:`migrator.volume`, the audit's figure too)
x (1 + retry rate), at a configurable price table.

The table is data (:class:`PriceTable`), defaulting to Upstash's published prices
(shared/reference/qstash.md section 6.1); pass another with ``migrator plan --prices FILE``.
Retries are priced as messages (the conservative reading: sources disagree).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from migrator.inventory import Inventory
from migrator.plan.spec import CostEstimate, CostLine, RouteSpec
from migrator.qstash_tiers import TierName
from migrator.topic_roles import classify
from migrator.volume import estimate_volume
from migrator.yamlfile import load_model

__all__ = ["PriceTable", "estimate", "load_prices"]

DAYS_PER_MONTH = 30


class PriceTable(BaseModel):
    """Prices in USD; edit a copy to match a negotiated contract."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    payg_per_100k_messages: float = Field(default=1.0, ge=0)
    """Pay as you go: price per 100,000 messages."""
    fixed_monthly: float = Field(default=180.0, ge=0)
    """Fixed plan (1M messages/day): flat monthly price."""
    free_messages_per_day: int = Field(default=1_000, ge=0)
    retry_rate: float = Field(default=0.05, ge=0, le=10)
    """Assumed share of deliveries that are retried when the inventory shows none."""


def load_prices(path: str | Path) -> PriceTable:
    return load_model(path, PriceTable, "price table", "docs/plan.md#cost")


def estimate(
    inventory: Inventory, routes: list[RouteSpec], tier: TierName, prices: PriceTable
) -> CostEstimate:
    """The estate's messages/day (the estimate the audit states too, :mod:`migrator.volume`),
    plus retries, priced on QStash's ``tier``."""
    topics = {t.name: t for t in inventory.topics}
    volume = estimate_volume(inventory)
    retry_rate = _observed_retry_rate(inventory, routes) or prices.retry_rate
    lines: list[CostLine] = []
    for v in volume.topics:
        topic = topics[v.topic]
        lines.append(
            CostLine(
                topic=v.topic,
                records_per_second=topic.records_per_second,
                records_in_topic=topic.total_records,
                fan_out=v.fan_out,
                messages_per_day=float(v.messages_per_day),
                monthly_usd=round(_monthly(v.messages_per_day * (1 + retry_rate), tier, prices,
                                           share=True), 2),
            )
        )
    with_retries = volume.messages_per_day * (1 + retry_rate)
    basis = {
        "free": f"free plan: {prices.free_messages_per_day:,} messages/day at no cost",
        "payg": f"pay as you go: ${prices.payg_per_100k_messages} per 100,000 messages, "
        f"{DAYS_PER_MONTH} days",
        "fixed": f"fixed plan: ${prices.fixed_monthly}/month flat",
    }[tier]
    return CostEstimate(
        qstash_plan=tier,
        retry_rate=round(retry_rate, 4),
        messages_per_day=float(volume.messages_per_day),
        messages_with_retries_per_day=round(with_retries, 1),
        volume_basis=volume.explanation,
        monthly_usd=round(_monthly(with_retries, tier, prices, share=False), 2),
        basis=basis,
        lines=lines,
    )


def _monthly(per_day: float, tier: TierName, prices: PriceTable, *, share: bool) -> float:
    if tier == "payg":
        return per_day * DAYS_PER_MONTH / 100_000 * prices.payg_per_100k_messages
    if tier == "fixed":
        return 0.0 if share else prices.fixed_monthly
    return 0.0


def _observed_retry_rate(inventory: Inventory, routes: list[RouteSpec]) -> float | None:
    """Dead-lettered records over consumed records, where the estate has dead-letter topics."""
    topics = {t.name: t for t in inventory.topics}
    roles = classify(inventory)
    dead = total = 0
    for route in routes:
        if route.topic in roles and roles[route.topic].role == "dead-letter":
            topic = topics.get(route.topic)
            dead += topic.total_records if topic else 0
        elif route.targets:
            topic = topics.get(route.topic)
            total += topic.total_records if topic else 0
    if dead == 0 or total == 0:
        return None
    return min(1.0, dead / total)
