"""Renders the action list: what --dry-run prints and what apply announces before acting."""

from __future__ import annotations

from migrator.plan.actions import (
    Action,
    CreateQueue,
    CreateSchedule,
    CreateUrlGroup,
    DeleteQueue,
    DeleteSchedule,
    DeleteUrlGroup,
    NoOp,
    UpdateQueue,
    UpdateSchedule,
    UpdateUrlGroup,
)
from migrator.plan.diff import Diff

__all__ = ["describe", "explain"]

_SIGN = {"create": "+", "update": "~", "delete": "-", "no-op": "="}


def describe(action: Action) -> str:
    """One line for one action."""
    match action:
        case CreateQueue(spec=s):
            detail = f"parallelism {s.parallelism}" + (", paused" if s.paused else "")
        case UpdateQueue(spec=s, before=b):
            detail = f"parallelism {b.parallelism} -> {s.parallelism}, paused {b.paused} -> {s.paused}"
        case CreateUrlGroup(spec=s):
            detail = "endpoints " + ", ".join(f"{e.name}={e.url}" for e in s.endpoints)
        case UpdateUrlGroup(add=add, remove=remove):
            parts = [f"+{e.name}={e.url}" for e in add] + [f"-{e.name}={e.url}" for e in remove]
            detail = "endpoints " + ", ".join(parts)
        case CreateSchedule(spec=s):
            detail = f"cron {s.cron!r} -> {s.destination}"
        case UpdateSchedule(spec=s, changed=changed):
            detail = f"{', '.join(changed)} changed (cron {s.cron!r} -> {s.destination})"
        case DeleteQueue() | DeleteUrlGroup() | DeleteSchedule():
            detail = "not in the plan (--prune --allow-destructive)"
        case NoOp():
            detail = "unchanged"
    return f"  {_SIGN[action.kind]} {action.kind:<7} {action.resource:<40} {detail}"


def explain(result: Diff) -> list[str]:
    """The lines apply and --dry-run print: every action, then a one-line summary."""
    lines = [describe(a) for a in result.actions]
    counts = {k: sum(1 for a in result.actions if a.kind == k)
              for k in ("create", "update", "delete", "no-op")}
    if not result.changes:
        lines.append(f"Nothing to do: QStash already matches the plan ({counts['no-op']} "
                     "resource(s) unchanged).")
    else:
        lines.append(f"{counts['create']} to create, {counts['update']} to update, "
                     f"{counts['delete']} to delete, {counts['no-op']} unchanged.")
    if result.unmanaged:
        lines.append(f"Kept (not in the plan; --prune --allow-destructive deletes them): "
                     f"{', '.join(result.unmanaged)}")
    return lines
