"""Desired (the plan) vs live (QStash) -> the ordered action list, plus the conflict check.

Conflict rule (optimistic concurrency, as sqlmesh's ``previous_plan_id``): for every resource the
plan touches, the live fingerprint must still be what the plan was reviewed against, or already
what the plan wants (a re-run after an interrupted apply). Anything else moved under the plan and
:func:`check_conflicts` raises :class:`~migrator.errors.ConflictingPlanError` naming it, before
anything is changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from migrator.errors import ConflictingPlanError, DestructiveChangeError
from migrator.plan import actions as act
from migrator.plan.spec import Plan, QueueSpec, UrlGroupSpec
from migrator.plan.state import (
    ABSENT,
    LiveState,
    Spec,
    desired_state,
    fingerprint,
    normalized,
    resource_id,
)

__all__ = ["Diff", "check_conflicts", "diff"]

_ORDER = {"schedule:delete": 0, "queue": 1, "url_group": 2, "schedule": 3,
          "url_group:delete": 4, "queue:delete": 5}


@dataclass(frozen=True)
class Diff:
    """The actions, and live resources the plan does not manage (kept unless pruning)."""

    actions: list[act.Action]
    unmanaged: list[str] = field(default_factory=list)

    @property
    def changes(self) -> list[act.Action]:
        return [a for a in self.actions if not isinstance(a, act.NoOp)]


def diff(plan: Plan, live: LiveState, *, prune: bool = False,
         allow_destructive: bool = False) -> Diff:
    """The ordered actions that make ``live`` match ``plan``."""
    desired = desired_state(plan)
    actions: list[act.Action] = []
    for rid, spec in desired.items():
        actions.append(_change(spec, live.resources.get(rid)))
    extra = sorted(rid for rid in live.resources
                   if rid not in desired and rid.split(":", 1)[1].startswith(plan.prefix))
    if prune and extra and not allow_destructive:
        raise DestructiveChangeError(
            f"--prune would delete {len(extra)} resource(s) not in the plan: {', '.join(extra)}; "
            "add --allow-destructive to delete them, or drop --prune to keep them."
        )
    if prune:
        actions.extend(_delete(rid) for rid in extra)
    actions.sort(key=_rank)
    return Diff(actions=actions, unmanaged=[] if prune else extra)


def _rank(action: act.Action) -> tuple[int, str]:
    kind = action.resource.split(":", 1)[0]
    key = f"{kind}:delete" if action.kind == "delete" else kind
    return _ORDER[key], action.resource


def _change(spec: Spec, live: Spec | None) -> act.Action:
    if live is not None and fingerprint(live) == fingerprint(spec):
        return act.NoOp(resource_id(spec))
    if isinstance(spec, QueueSpec):
        if live is None:
            return act.CreateQueue(spec)
        assert isinstance(live, QueueSpec)
        return act.UpdateQueue(spec, live)
    if isinstance(spec, UrlGroupSpec):
        if live is None:
            return act.CreateUrlGroup(spec)
        assert isinstance(live, UrlGroupSpec)
        want = {(e.name, e.url) for e in spec.endpoints}
        have = {(e.name, e.url) for e in live.endpoints}
        return act.UpdateUrlGroup(
            spec.name,
            add=tuple(e for e in spec.endpoints if (e.name, e.url) not in have),
            remove=tuple(e for e in live.endpoints if (e.name, e.url) not in want),
        )
    if live is None:
        return act.CreateSchedule(spec)
    before, after = normalized(live), normalized(spec)
    return act.UpdateSchedule(spec, tuple(k for k in after if after[k] != before.get(k)))


def _delete(rid: str) -> act.Action:
    kind, name = rid.split(":", 1)
    if kind == "queue":
        return act.DeleteQueue(name)
    if kind == "url_group":
        return act.DeleteUrlGroup(name)
    return act.DeleteSchedule(name)


def check_conflicts(plan: Plan, live: LiveState, *, prune: bool = False) -> None:
    """Raise ConflictingPlanError if live state moved since review in a way that conflicts."""
    if plan.reviewed_state is None:
        return
    seen = plan.reviewed_state.fingerprints
    now = live.fingerprints(plan.prefix)
    wanted = {rid: fingerprint(spec) for rid, spec in desired_state(plan).items()}
    moved: list[str] = []
    for rid in sorted(set(seen) | set(now) | set(wanted)):
        before, current = seen.get(rid, ABSENT), now.get(rid, ABSENT)
        if current == before:
            continue
        if rid in wanted:
            if current == wanted[rid]:
                continue
        elif not prune or current == ABSENT:
            continue  # not ours to change: kept as it is
        now_spec = live.resources.get(rid)
        moved.append(f"{rid} ({_what(before)} at review; now "
                     f"{_summary(now_spec) if now_spec is not None else 'absent'})")
    if moved:
        raise ConflictingPlanError(
            f"QStash changed since the plan was reviewed ({plan.reviewed_state.read_at}): "
            f"{'; '.join(moved)}. Nothing was changed; re-run `migrator plan` to review the "
            "current state."
        )


def _what(fp: str) -> str:
    return "absent" if fp == ABSENT else f"fingerprint {fp[:8]}"


def _summary(spec: Spec) -> str:
    """What a live resource holds, in a few words (the review kept only its fingerprint)."""
    if isinstance(spec, QueueSpec):
        return f"parallelism {spec.parallelism}" + (", paused" if spec.paused else "")
    if isinstance(spec, UrlGroupSpec):
        return "endpoints " + ", ".join(f"{e.name or '(unnamed)'}={e.url}" for e in spec.endpoints)
    return f"cron {spec.cron!r} -> {spec.destination}"
