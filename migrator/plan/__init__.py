"""Inventory -> reviewed plan -> live QStash resources (`migrator plan`, `migrator apply`).

The plan is data (:class:`Plan`, written as ``plan.yaml``); :func:`diff` turns it and the live
state into an ordered list of actions that :func:`apply_actions` carries out and :func:`explain`
prints, so ``apply`` and ``--dry-run`` walk the same list. See docs/plan.md and docs/apply.md.
"""

from __future__ import annotations

from migrator.plan.apply import ApplyReport, apply_actions
from migrator.plan.builder import PlanOptions, build_plan
from migrator.plan.diff import Diff, check_conflicts, diff
from migrator.plan.explain import explain
from migrator.plan.render import render
from migrator.plan.spec import Plan, load_plan
from migrator.plan.state import LiveState, read_state

__all__ = [
    "ApplyReport",
    "Diff",
    "LiveState",
    "Plan",
    "PlanOptions",
    "apply_actions",
    "build_plan",
    "check_conflicts",
    "diff",
    "explain",
    "load_plan",
    "read_state",
    "render",
]
