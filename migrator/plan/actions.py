"""The ordered list of actions apply carries out and --dry-run prints: small frozen dataclasses.

Order: schedule deletions first (they may target queues or URL groups), then queues, URL groups
and schedules created or updated, then URL-group and queue deletions. ``NoOp`` keeps unchanged
resources visible in the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migrator.plan.spec import QueueSpec, ScheduleSpec, UrlGroupEndpointSpec, UrlGroupSpec

__all__ = [
    "Action",
    "CreateQueue",
    "CreateSchedule",
    "CreateUrlGroup",
    "DeleteQueue",
    "DeleteSchedule",
    "DeleteUrlGroup",
    "NoOp",
    "UpdateQueue",
    "UpdateSchedule",
    "UpdateUrlGroup",
]

Kind = Literal["create", "update", "delete", "no-op"]


@dataclass(frozen=True)
class CreateQueue:
    """Create a queue. Args: spec: the queue as the plan wants it."""

    spec: QueueSpec
    kind: Kind = "create"

    @property
    def resource(self) -> str:
        return f"queue:{self.spec.name}"


@dataclass(frozen=True)
class UpdateQueue:
    """Change a queue's parallelism or paused flag. Args: spec: wanted; before: live."""

    spec: QueueSpec
    before: QueueSpec
    kind: Kind = "update"

    @property
    def resource(self) -> str:
        return f"queue:{self.spec.name}"


@dataclass(frozen=True)
class DeleteQueue:
    """Delete a queue the plan no longer has (only with --prune --allow-destructive)."""

    name: str
    kind: Kind = "delete"

    @property
    def resource(self) -> str:
        return f"queue:{self.name}"


@dataclass(frozen=True)
class CreateUrlGroup:
    """Create a URL group with its endpoints."""

    spec: UrlGroupSpec
    kind: Kind = "create"

    @property
    def resource(self) -> str:
        return f"url_group:{self.spec.name}"


@dataclass(frozen=True)
class UpdateUrlGroup:
    """Add (or re-point) and remove endpoints of a URL group. Args: add, remove: endpoints."""

    name: str
    add: tuple[UrlGroupEndpointSpec, ...]
    remove: tuple[UrlGroupEndpointSpec, ...]
    kind: Kind = "update"

    @property
    def resource(self) -> str:
        return f"url_group:{self.name}"


@dataclass(frozen=True)
class DeleteUrlGroup:
    name: str
    kind: Kind = "delete"

    @property
    def resource(self) -> str:
        return f"url_group:{self.name}"


@dataclass(frozen=True)
class CreateSchedule:
    spec: ScheduleSpec
    kind: Kind = "create"

    @property
    def resource(self) -> str:
        return f"schedule:{self.spec.schedule_id}"


@dataclass(frozen=True)
class UpdateSchedule:
    """Overwrite a schedule (same id). Args: changed: the fields that differ."""

    spec: ScheduleSpec
    changed: tuple[str, ...]
    kind: Kind = "update"

    @property
    def resource(self) -> str:
        return f"schedule:{self.spec.schedule_id}"


@dataclass(frozen=True)
class DeleteSchedule:
    schedule_id: str
    kind: Kind = "delete"

    @property
    def resource(self) -> str:
        return f"schedule:{self.schedule_id}"


@dataclass(frozen=True)
class NoOp:
    """Already as the plan wants it."""

    resource: str
    kind: Kind = "no-op"


Action = (
    CreateQueue | UpdateQueue | DeleteQueue | CreateUrlGroup | UpdateUrlGroup | DeleteUrlGroup
    | CreateSchedule | UpdateSchedule | DeleteSchedule | NoOp
)
