"""The ``rollback`` step: stop live delivery of a group at a consistent point and hand its records
back to the old consumers, without a gap and without processing a record twice.

``rolling_back`` (bridges stop delivering the group: drain, commit, leave), wait until the bridge
group is empty, cancel what QStash still holds for the hand-off, wait until every message QStash
was given for it has settled (:mod:`migrator.cutover.outcome`), then set the old group's
committed offsets to the first record per partition the endpoint did not get, record the
records above it that the endpoint did get (the skip list the old consumers must honour; empty
on an ordered route), and ``rolled_back``. The decision is written before any offset is set, so
a rerun after a crash sets the same offsets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from migrator.bridge.config import DirectHttpDestination
from migrator.cutover.cancellation import cancel_label
from migrator.cutover.fence import describe_members, snapshot
from migrator.cutover.outcome import HandoffOutcome, rollback_points, settle, to_ranges
from migrator.cutover.qstash_logs import LogReader
from migrator.cutover.scope import cutover_label
from migrator.cutover.state import (
    GroupCutover,
    PartitionOffset,
    PartitionSkip,
    State,
    now_iso,
)
from migrator.errors import ConfigError, GroupNotEmptyError

if TYPE_CHECKING:
    from migrator.cutover.coordinator import Coordinator

__all__ = ["handoff_since_ms", "rollback", "uses_qstash"]

Partition = tuple[str, int]
LOG_SLACK_MS = 60_000  # QStash log times vs this machine's clock


def handoff_since_ms(current: GroupCutover) -> int:
    """Where to start reading QStash's logs for the current hand-off."""
    if not current.handoff_at:
        return 0
    at = datetime.fromisoformat(current.handoff_at.replace("Z", "+00:00"))
    return int(at.timestamp() * 1000) - LOG_SLACK_MS


def uses_qstash(coord: Coordinator, group: str) -> bool:
    return any(d.replaces_group == group and not isinstance(d, DirectHttpDestination)
               for r in coord.cfg.routes for d in r.destinations)


def rollback(coord: Coordinator, group: str, *, timeout: float) -> GroupCutover:
    parts, current = coord.begin(group, "rollback")
    if current.state is State.ROLLED_BACK:
        coord.say(f"group {group!r} is already rolled back ({current.rollback_at}); "
                  "nothing to do")
        return current
    coord.admin.require_may_alter(group)  # before the bridges stop delivering it
    if current.state is State.SWITCHED:
        current = coord.save(current.moved(
            State.ROLLING_BACK, "bridges stop delivering this group: drain, commit, leave"))
    _await_bridges_gone(coord, current, parts, timeout)
    old = snapshot(coord.admin, group, parts)
    if old.members:
        raise GroupNotEmptyError(
            f"group {group!r} has {describe_members(old.members)}: its old consumers run "
            "again before their offsets were set back. Stop them and rerun the rollback "
            "(state stays rolling_back; the bridges deliver nothing for it).")
    if not current.rollback:
        current = coord.save(current.moved(
            State.ROLLING_BACK, "rollback offsets decided",
            **_decide(coord, current, parts, timeout)))
    coord.set_offsets(group, current.rollback_map(), "the rollback offsets")
    note = ("the old group's committed offsets point at the first record the endpoint did not "
            "get; restart the old consumers")
    if current.skip:
        note += " and have them skip the records of the skip list (the endpoint processed them)"
    return coord.save(current.moved(State.ROLLED_BACK, note))


def _await_bridges_gone(coord: Coordinator, current: GroupCutover, parts: Sequence[Partition],
                        timeout: float) -> None:
    deadline = time.monotonic() + timeout
    said = False
    while True:
        snap = snapshot(coord.admin, current.bridge_group, parts)
        if not snap.members:
            return
        if time.monotonic() >= deadline:
            raise GroupNotEmptyError(
                f"bridge group {current.bridge_group!r} still has "
                f"{describe_members(snap.members)} after {timeout:g}s; bridges of an older "
                "version, or stuck draining? Rerun the rollback to keep waiting (state "
                "stays rolling_back).")
        if not said:
            coord.say(f"waiting for the bridges to drain, commit and leave group "
                      f"{current.bridge_group!r} ({describe_members(snap.members)})")
            said = True
        time.sleep(coord.poll)


def _decide(coord: Coordinator, current: GroupCutover, parts: Sequence[Partition],
            timeout: float) -> dict[str, Any]:
    group = current.group
    committed = coord.admin.list_group_offsets([current.bridge_group]).get(
        current.bridge_group, {})
    outcome: HandoffOutcome | None = None
    if uses_qstash(coord, group):
        if coord.qstash is None:
            raise ConfigError(f"group {group!r} is delivered through QStash but no QStash "
                              "token is configured (qstash.token or QSTASH_TOKEN).")
        label = cutover_label(group, current.switches)
        coord.ensure_held("cancelling the messages QStash holds for the hand-off")
        coord.changed(f"asked QStash to cancel the messages labelled {label}")
        with httpx.Client(timeout=30.0) as http:
            matched = cancel_label(coord.qstash.url, coord.qstash.bearer, label, client=http)
            coord.say(f"asked QStash to cancel the {matched} message(s) it held for group "
                      f"{group!r}")
            reader = LogReader(coord.qstash.url, coord.qstash.bearer, http)
            outcome = settle(reader, label, since_ms=handoff_since_ms(current), timeout=timeout,
                             poll=coord.poll, on_wait=coord.say)
        coord.say(f"QStash settled {outcome.messages} message(s) of the hand-off: "
                  f"{outcome.count('delivered')} delivered, {outcome.count('not_delivered')} "
                  "cancelled or failed")
    points = rollback_points(parts, current.handoff_map(), committed, outcome)
    at = now_iso()
    return {
        "rollback": tuple(PartitionOffset(topic=t, partition=p, offset=pt.offset, at=at,
                                          source=pt.source)
                          for (t, p), pt in points.items()),
        "skip": tuple(PartitionSkip(topic=t, partition=p, ranges=to_ranges(pt.skip))
                      for (t, p), pt in points.items() if pt.skip),
        "rollback_at": at,
        # what QStash's logs say it cancelled: its answer to the cancel is how many matched,
        # and a matched message can still be delivered before the cancel takes effect
        "cancelled": outcome.cancelled if outcome is not None else 0,
    }
