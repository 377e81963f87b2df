"""The ``switch`` step: fence the old group, record the hand-off, copy it to the bridge group.

Fence (the old group has no members and its committed offsets do not move for the watch
window), record the old group's committed offsets as the hand-off (``switching``), set them as
the committed offsets of the group's bridge group (which has no members: bridges only join it
once the group is ``switched``), check the old group did not move meanwhile, then ``switched``:
the bridges start that group exactly at those offsets. A rerun after a crash finishes the
recorded hand-off if the old group has not moved since.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from migrator.cutover.fence import GroupSnapshot, await_quiet, describe_members, snapshot
from migrator.cutover.state import GroupCutover, PartitionOffset, State, now_iso
from migrator.errors import ConfigError, FenceTimeoutError, GroupNotEmptyError, KafkaAuthError

if TYPE_CHECKING:
    from migrator.cutover.coordinator import Coordinator

__all__ = ["switch"]

Partition = tuple[str, int]


def switch(
    coord: Coordinator,
    group: str,
    *,
    watch: float,
    timeout: float,
    overrides: Mapping[Partition, int] | None = None,
    require_bridge: bool = True,
) -> GroupCutover:
    parts, current = coord.begin(group, "switch")
    if current.state is State.SWITCHED:
        coord.say(f"group {group!r} is already switched (hand-off {current.handoff_at}); "
                  "nothing to do")
        return current
    _check_overrides(coord, group, parts, overrides or {})
    coord.admin.require_may_alter(current.bridge_group)  # before anyone stops a consumer
    if require_bridge:
        coord.require_bridge(group)
    if current.state is State.SWITCHING and current.handoff:
        again = snapshot(coord.admin, group, parts)
        recorded = {(p.topic, p.partition): p.offset for p in current.handoff
                    if p.source == "committed"}
        if not again.members and again.offsets == recorded:
            coord.say(f"finishing the interrupted hand-off of group {group!r} "
                      f"(recorded {current.handoff_at}; the old group has not moved since)")
            return _finish(coord, current, parts, again)
        coord.say(f"group {group!r} moved since the interrupted hand-off was recorded; "
                  "fencing again")
    coord.say(
        f"Stop every consumer of group {group!r} now. Waiting until the group has no members "
        f"and its committed offsets stay unchanged for {watch:g}s (timeout {timeout:g}s).")
    fenced = await_quiet(coord.admin, group, parts, watch=watch, timeout=timeout,
                         poll=coord.poll, on_wait=coord.say)
    handoff = _handoff(coord, parts, fenced, overrides or {})
    switching = coord.save(current.moved(
        State.SWITCHING, f"fenced after {watch:g}s quiet; handing off",
        handoff=handoff, handoff_at=now_iso(),
        topics=tuple(sorted({t for t, _ in parts})), rollback=(), rollback_at=None,
        cancelled=None, skip=(), switches=current.switches + 1))
    return _finish(coord, switching, parts, fenced)


def _check_overrides(coord: Coordinator, group: str, parts: Sequence[Partition],
                     overrides: Mapping[Partition, int]) -> None:
    unknown = sorted(set(overrides) - set(parts))
    if unknown:
        raise ConfigError(
            f"--offset: {', '.join(f'{t}:{p}' for t, p in unknown)} is not a partition "
            f"group {group!r} is handed over on; its partitions are topics "
            f"{sorted({t for t, _ in parts})}.")
    if overrides:
        low = coord.admin.list_offsets(list(overrides), "earliest")
        high = coord.admin.list_offsets(list(overrides), "latest")
        for tp, offset in overrides.items():
            if not low.get(tp, 0) <= offset <= high.get(tp, offset):
                raise ConfigError(
                    f"--offset {tp[0]}:{tp[1]}={offset}: outside the partition's offsets "
                    f"{low.get(tp)}..{high.get(tp)}.")


def _handoff(coord: Coordinator, parts: Sequence[Partition], fenced: GroupSnapshot,
             overrides: Mapping[Partition, int]) -> tuple[PartitionOffset, ...]:
    at = now_iso()
    low = coord.admin.list_offsets(list(parts), "earliest")
    out = []
    for tp in parts:
        if tp in overrides:
            offset, source = overrides[tp], "override"
        elif tp in fenced.offsets and fenced.offsets[tp] >= low.get(tp, 0):
            offset, source = fenced.offsets[tp], "committed"
        else:
            # never committed (the group processed nothing there) or below what retention
            # kept: the first record still in the log
            offset, source = low.get(tp, 0), "earliest"
        out.append(PartitionOffset(topic=tp[0], partition=tp[1], offset=offset, at=at,
                                   source=source))
    return tuple(out)


def _finish(coord: Coordinator, switching: GroupCutover, parts: Sequence[Partition],
            fenced: GroupSnapshot) -> GroupCutover:
    group = switching.group
    bgroup = switching.bridge_group
    bridges = snapshot(coord.admin, bgroup, parts)
    if bridges.members:
        raise GroupNotEmptyError(
            f"bridge group {bgroup!r} has {describe_members(bridges.members)} although group "
            f"{group!r} is not switched (a bridge from an older migrator?); stop them and "
            "rerun the switch. The hand-off is recorded; nothing was delivered.")
    try:
        coord.set_offsets(bgroup, switching.handoff_map(), "the hand-off")
    except KafkaAuthError:
        # the principal may not set the bridge group's offsets: nothing was handed over
        coord.save(switching.moved(
            State.PREPARED, "Kafka refused setting the bridge group's offsets"))
        raise
    after = snapshot(coord.admin, group, parts)
    if after.members or after.offsets != fenced.offsets:
        back = coord.save(switching.moved(
            State.PREPARED, "the old group moved during the hand-off; nothing was delivered"))
        seen = describe_members(after.members) if after.members else "its offsets moved"
        raise FenceTimeoutError(
            f"group {group!r} changed during the hand-off ({seen}); the switch was undone "
            f"(state {back.state.value}, nothing delivered). Stop its consumers and rerun.")
    return coord.save(switching.moved(
        State.SWITCHED, "bridges deliver from the hand-off offsets"))
