"""Renders the action list: what --dry-run prints and what apply announces before acting."""

from __future__ import annotations

from migrator.plan import actions as act
from migrator.plan.diff import Diff

__all__ = ["describe", "explain"]

_SIGN = {"create": "+", "update": "~", "delete": "-", "no-op": "="}


def describe(action: act.Action) -> str:
    """One line for one action."""
    match action:
        case act.CreateQueue(spec=s):
            detail = f"parallelism {s.parallelism}" + (", paused" if s.paused else "")
        case act.UpdateQueue(spec=s, before=b):
            detail = f"parallelism {b.parallelism} -> {s.parallelism}, paused {b.paused} -> {s.paused}"
        case act.CreateUrlGroup(spec=s):
            detail = "endpoints " + ", ".join(f"{e.name}={e.url}" for e in s.endpoints)
        case act.UpdateUrlGroup(add=add, remove=remove):
            parts = [f"+{e.name}={e.url}" for e in add] + [f"-{e.name}={e.url}" for e in remove]
            detail = "endpoints " + ", ".join(parts)
        case act.CreateSchedule(spec=s):
            detail = f"cron {s.cron!r} -> {s.destination}"
        case act.UpdateSchedule(spec=s, changed=changed):
            detail = f"{', '.join(changed)} changed (cron {s.cron!r} -> {s.destination})"
        case act.DeleteQueue() | act.DeleteUrlGroup() | act.DeleteSchedule():
            detail = "not in the plan (--prune --allow-destructive)"
        case act.NoOp():
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
