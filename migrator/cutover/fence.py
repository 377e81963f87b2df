"""The fence: proof that the old consumers stopped.

A group is *quiet* when it has no members AND its committed offsets on the routed partitions did
not change for a whole watch window. Members alone are not enough: a consumer that assigns
partitions by hand (or a second deployment using the group id only to commit) commits without
ever being a member; offsets alone are not enough either: an idle member commits nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from migrator.errors import FenceTimeoutError
from migrator.kafka.admin import KafkaAdmin
from migrator.kafka.descriptions import GroupMemberData

__all__ = ["GroupSnapshot", "await_quiet", "describe_members", "snapshot"]

Partition = tuple[str, int]


@dataclass(frozen=True)
class GroupSnapshot:
    """A consumer group as seen at one moment."""

    group: str
    state: str
    members: tuple[GroupMemberData, ...]
    offsets: dict[Partition, int] = field(default_factory=dict)  # committed, routed partitions


def snapshot(admin: KafkaAdmin, group: str, partitions: Sequence[Partition]) -> GroupSnapshot:
    desc = admin.describe_groups([group]).get(group)
    committed = admin.list_group_offsets([group]).get(group, {})
    wanted = set(partitions)
    offsets = {tp: o for tp, o in committed.items() if tp in wanted and o is not None}
    if desc is None:
        return GroupSnapshot(group, "DEAD", (), offsets)
    return GroupSnapshot(group, desc.state, desc.members, offsets)


def describe_members(members: Sequence[GroupMemberData]) -> str:
    shown = ", ".join(f"{m.client_id or '?'}@{m.host.lstrip('/') or '?'}" for m in members[:5])
    more = f" and {len(members) - 5} more" if len(members) > 5 else ""
    return f"{len(members)} member(s): {shown}{more}"


def _moves(before: dict[Partition, int], after: dict[Partition, int]) -> str:
    moved = [f"{t}[{p}] {before.get((t, p), '-')} -> {after.get((t, p), '-')}"
             for (t, p) in sorted(set(before) | set(after)) if before.get((t, p)) != after.get((t, p))]
    return ", ".join(moved[:5]) + (f" and {len(moved) - 5} more" if len(moved) > 5 else "")


def await_quiet(
    admin: KafkaAdmin,
    group: str,
    partitions: Sequence[Partition],
    *,
    watch: float,
    timeout: float,
    poll: float = 0.5,
    on_wait: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> GroupSnapshot:
    """Wait until ``group`` has no members and unchanged offsets for ``watch`` seconds.

    Returns the snapshot taken at the end of the window. Raises :class:`FenceTimeoutError`
    with what was seen when that does not happen within ``timeout`` seconds.
    """
    start = clock()
    deadline = start + timeout
    last = snapshot(admin, group, partitions)
    quiet_since: float | None = None if last.members else start
    seen: list[str] = []
    said = ""

    def note(text: str) -> None:
        nonlocal said
        if text != said:
            said = text
            seen.append(text)
            if on_wait is not None:
                on_wait(text)

    if last.members:
        note(f"group {group!r} has {describe_members(last.members)}; waiting for them to stop")
    while True:
        now = clock()
        if quiet_since is not None and now - quiet_since >= watch:
            return last
        if now >= deadline:
            what = "; ".join(seen[-5:]) or "nothing changed, but the watch window did not pass"
            raise FenceTimeoutError(
                f"group {group!r} did not stay quiet (no members, committed offsets unchanged "
                f"for {watch:g}s) within {timeout:g}s; nothing was changed. Seen: {what}. Stop "
                "every consumer of the group (and anything committing with its group id), then "
                "run the switch again."
            )
        sleep(min(poll, max(0.0, deadline - now)))
        current = snapshot(admin, group, partitions)
        now = clock()
        if current.members:
            quiet_since = None
            note(f"group {group!r} has {describe_members(current.members)}")
        elif current.offsets != last.offsets:
            quiet_since = now
            note(f"group {group!r} has no members but its committed offsets moved: "
                 f"{_moves(last.offsets, current.offsets)} (a consumer outside the group "
                 "still commits?); watching again")
        elif quiet_since is None:
            quiet_since = now
            note(f"group {group!r} has no members; watching its offsets for {watch:g}s")
        last = current
