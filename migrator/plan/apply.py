"""Carries out the action list against QStash, one action at a time, recording each outcome.

Transient errors are retried inside :class:`~migrator.plan.admin.QStashAdmin`. If an action still
fails, the walk stops: the :class:`ApplyReport` says what was applied, what failed and what was
not attempted. Every action is idempotent (upserts, overwrite-by-id, deletes), so re-running
``migrator apply`` recomputes the list from live state and finishes the job.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Literal, Protocol

from migrator.errors import MigratorError
from migrator.plan import actions as act
from migrator.plan.spec import QueueSpec, ScheduleSpec, UrlGroupEndpointSpec, UrlGroupSpec

__all__ = ["Admin", "ApplyReport", "Outcome", "apply_actions"]

log = logging.getLogger(__name__)
Status = Literal["applied", "unchanged", "failed", "not applied"]


class Admin(Protocol):
    """What apply needs from QStash (QStashAdmin, or a fake in unit tests)."""

    def upsert_queue(self, spec: QueueSpec) -> None: ...
    def delete_queue(self, name: str) -> None: ...
    def upsert_endpoints(self, group: str, endpoints: list[UrlGroupEndpointSpec]) -> None: ...
    def remove_endpoints(self, group: str, endpoints: list[dict[str, str]]) -> None: ...
    def url_group(self, name: str) -> UrlGroupSpec: ...
    def delete_url_group(self, name: str) -> None: ...
    def create_schedule(self, spec: ScheduleSpec) -> None: ...
    def delete_schedule(self, schedule_id: str) -> None: ...


@dataclass(frozen=True)
class Outcome:
    resource: str
    kind: str
    status: Status
    error: str | None = None


@dataclass
class ApplyReport:
    """What happened to each action, in order."""

    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: bool = False
    """The walk was stopped by Ctrl-C (the action in flight is reported as failed)."""

    @property
    def failed(self) -> Outcome | None:
        return next((o for o in self.outcomes if o.status == "failed"), None)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def lines(self) -> list[str]:
        out = [f"  {o.status:<11} {o.kind:<7} {o.resource}" + (f": {o.error}" if o.error else "")
               for o in self.outcomes if o.status != "unchanged"]
        out.append(f"Applied {self.count('applied')}, failed {self.count('failed')}, "
                   f"not applied {self.count('not applied')}, unchanged {self.count('unchanged')}.")
        return out

    def to_json(self) -> str:
        return json.dumps([o.__dict__ for o in self.outcomes], indent=2) + "\n"


def apply_actions(admin: Admin, actions: list[act.Action]) -> ApplyReport:
    """Run ``actions`` in order; stop at the first failure (or Ctrl-C) and mark the rest not
    applied."""
    report = ApplyReport()
    failed = False
    for action in actions:
        if isinstance(action, act.NoOp):
            report.outcomes.append(Outcome(action.resource, action.kind, "unchanged"))
            continue
        if failed:
            report.outcomes.append(Outcome(action.resource, action.kind, "not applied"))
            continue
        try:
            _run(admin, action)
        except MigratorError as exc:
            log.info("apply: %s %s failed: %s", action.kind, action.resource, exc)
            report.outcomes.append(Outcome(action.resource, action.kind, "failed", str(exc)))
            failed = True
            continue
        except KeyboardInterrupt:
            report.outcomes.append(Outcome(
                action.resource, action.kind, "failed",
                "interrupted (it may or may not have taken effect; a re-run checks)"))
            report.interrupted = failed = True
            continue
        log.info("apply: %s %s", action.kind, action.resource)
        report.outcomes.append(Outcome(action.resource, action.kind, "applied"))
    return report


def _run(admin: Admin, action: act.Action) -> None:
    match action:
        case act.CreateQueue(spec=spec) | act.UpdateQueue(spec=spec):
            admin.upsert_queue(spec)
        case act.DeleteQueue(name=name):
            admin.delete_queue(name)
        case act.CreateUrlGroup(spec=spec):
            admin.upsert_endpoints(spec.name, list(spec.endpoints))
        case act.UpdateUrlGroup():
            _update_group(admin, action)
        case act.DeleteUrlGroup(name=name):
            admin.delete_url_group(name)
        case act.CreateSchedule(spec=spec) | act.UpdateSchedule(spec=spec):
            admin.create_schedule(spec)
        case act.DeleteSchedule(schedule_id=schedule_id):
            admin.delete_schedule(schedule_id)
        case act.NoOp():
            pass


def _update_group(admin: Admin, action: act.UpdateUrlGroup) -> None:
    """Add first (the group never becomes empty, which would delete it), then remove leftovers.

    Whether an upsert re-points an endpoint of the same name in place is server behaviour, so
    the leftovers are read back rather than assumed.
    """
    if action.add:
        admin.upsert_endpoints(action.name, list(action.add))
    if not action.remove:
        return
    wanted = {(e.name, e.url) for e in action.add}
    wanted_urls = {e.url for e in action.add}
    current = admin.url_group(action.name)
    stale = {(e.name, e.url) for e in action.remove}
    items: list[dict[str, str]] = []
    for ep in current.endpoints:
        if (ep.name, ep.url) in stale and (ep.name, ep.url) not in wanted:
            items.append({"name": ep.name} if ep.url in wanted_urls and ep.name else {"url": ep.url})
    if items:
        admin.remove_endpoints(action.name, items)
