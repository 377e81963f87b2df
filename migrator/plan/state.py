"""Live QStash state and fingerprints of normalized resource specs.

A resource is identified as ``queue:NAME``, ``url_group:NAME`` or ``schedule:ID``; its
fingerprint hashes only what the plan manages (queue parallelism and pause, the set of URL-group
endpoints, a schedule's destination, cron, method, body and retries), so equal fingerprints mean
nothing to do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from migrator.plan.admin import QStashAdmin
from migrator.plan.spec import Plan, QueueSpec, ReviewedState, ScheduleSpec, UrlGroupSpec

__all__ = [
    "ABSENT",
    "LiveState",
    "Spec",
    "desired_state",
    "fingerprint",
    "normalized",
    "read_state",
    "resource_id",
    "reviewed",
]

ABSENT = "absent"
Spec = QueueSpec | UrlGroupSpec | ScheduleSpec


@dataclass(frozen=True)
class LiveState:
    """Resources by id (queue:NAME, url_group:NAME, schedule:ID)."""

    resources: dict[str, Spec] = field(default_factory=dict)

    def fingerprints(self, prefix: str = "") -> dict[str, str]:
        return {rid: fingerprint(spec) for rid, spec in self.resources.items()
                if _name(rid).startswith(prefix)}


def resource_id(spec: Spec) -> str:
    if isinstance(spec, QueueSpec):
        return f"queue:{spec.name}"
    if isinstance(spec, UrlGroupSpec):
        return f"url_group:{spec.name}"
    return f"schedule:{spec.schedule_id}"


def _name(rid: str) -> str:
    return rid.split(":", 1)[1]


def normalized(spec: Spec) -> dict[str, Any]:
    """The managed part of a spec, in a canonical form."""
    if isinstance(spec, QueueSpec):
        return {"parallelism": spec.parallelism, "paused": spec.paused}
    if isinstance(spec, UrlGroupSpec):
        return {"endpoints": sorted([e.name, e.url] for e in spec.endpoints)}
    return {
        "destination": spec.destination, "cron": spec.cron, "method": spec.method,
        "body": spec.body or None, "retries": spec.retries,
    }


def fingerprint(spec: Spec) -> str:
    text = json.dumps(normalized(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_state(admin: QStashAdmin) -> LiveState:
    """Queues, URL groups and schedules as they are now."""
    specs: list[Spec] = [*admin.queues(), *admin.url_groups(), *admin.schedules()]
    return LiveState({resource_id(s): s for s in specs})


def desired_state(plan: Plan) -> dict[str, Spec]:
    res = plan.resources
    specs: list[Spec] = [*res.queues, *res.url_groups, *res.schedules]
    return {resource_id(s): s for s in specs}


def reviewed(live: LiveState, url: str, prefix: str = "") -> ReviewedState:
    """What the plan records as the state it was reviewed against."""
    return ReviewedState(
        url=url,
        read_at=datetime.now(UTC).isoformat(timespec="seconds"),
        fingerprints=live.fingerprints(prefix),
    )
