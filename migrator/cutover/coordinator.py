"""The cutover steps per replaced consumer group: prepare, shadow, switch, rollback, status.

Each step writes its state to the cutover topic *before* it changes anything in Kafka (with what
it decided: hand-off or rollback offsets) and again after, and every Kafka change it makes is
idempotent (setting committed offsets to recorded values), so a step killed at any point is
finished by running it again.

* **switch**: fence (the old group has no members and its committed offsets do not move for the
  watch window), record the old group's committed offsets as the hand-off (``switching``), set
  them as the committed offsets of the group's bridge group (which has no members: bridges only
  join it once the group is ``switched``), check the old group did not move meanwhile, then
  ``switched``: the bridges start that group exactly at those offsets.
* **rollback**: ``rolling_back`` (bridges stop delivering the group: drain, commit, leave),
  wait until the bridge group is empty, cancel what QStash still holds for the group, set the
  old group's committed offsets to the first record per partition the endpoint did not get (the
  bridge's committed offset, or the first cancelled message's offset when lower), then
  ``rolled_back``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from migrator.bridge.config import BridgeConfig, DirectHttpDestination
from migrator.config import KafkaConnection, QStashConnection
from migrator.cutover.cancellation import Cancellation, cancel_pending, last_delivered
from migrator.cutover.fence import GroupSnapshot, await_quiet, describe_members, snapshot
from migrator.cutover.scope import (
    bridge_group,
    cutover_label,
    presence_group,
    require_routed,
    routed_topics,
)
from migrator.cutover.state import GroupCutover, PartitionOffset, State, check_step, now_iso
from migrator.cutover.store import CutoverStore
from migrator.errors import (
    BridgeNotRunningError,
    ConfigError,
    FenceTimeoutError,
    GroupNotEmptyError,
    KafkaAuthError,
)
from migrator.kafka.group_offsets import GroupOffsetAdmin

__all__ = ["Coordinator", "GroupStatus", "PartitionStatus"]

log = logging.getLogger(__name__)

Partition = tuple[str, int]


@dataclass(frozen=True)
class PartitionStatus:
    topic: str
    partition: int
    end: int
    old_committed: int | None
    bridge_committed: int | None
    handoff: int | None

    @property
    def old_lag(self) -> int | None:
        return None if self.old_committed is None else max(0, self.end - self.old_committed)

    @property
    def bridge_lag(self) -> int | None:
        return None if self.bridge_committed is None else max(0, self.end - self.bridge_committed)


@dataclass(frozen=True)
class GroupStatus:
    cutover: GroupCutover
    old: GroupSnapshot
    bridge: GroupSnapshot
    partitions: tuple[PartitionStatus, ...] = field(default_factory=tuple)

    @property
    def next_commands(self) -> list[str]:
        return [f"migrator cutover {step} {self.cutover.group}" for step in self.cutover.next_steps()]

    def to_json(self) -> dict[str, Any]:
        def lag(values: list[int | None]) -> int | None:
            known = [v for v in values if v is not None]
            return sum(known) if known else None

        c = self.cutover
        return {
            "group": c.group,
            "state": c.state.value,
            "since": c.at or None,
            "note": c.note,
            "old_group": {"state": self.old.state, "members": len(self.old.members),
                          "lag": lag([p.old_lag for p in self.partitions])},
            "bridge_group": {"name": c.bridge_group, "state": self.bridge.state,
                             "members": len(self.bridge.members),
                             "lag": lag([p.bridge_lag for p in self.partitions])},
            # records the bridge delivered (accepted by QStash / a 2xx) since the hand-off, by
            # its commits; what QStash still holds or failed is `cutover verify`'s (issue 13)
            "delivered_since_handoff": (
                sum(max(0, p.bridge_committed - p.handoff) for p in self.partitions
                    if p.bridge_committed is not None and p.handoff is not None)
                if c.state in (State.SWITCHED, State.ROLLING_BACK) else None),
            "handoff_at": c.handoff_at,
            "handoff": [p.model_dump() for p in c.handoff],
            "rollback_at": c.rollback_at,
            "rollback": [p.model_dump() for p in c.rollback],
            "partitions": [{"topic": p.topic, "partition": p.partition, "end": p.end,
                            "old_committed": p.old_committed, "old_lag": p.old_lag,
                            "bridge_committed": p.bridge_committed, "bridge_lag": p.bridge_lag,
                            "handoff": p.handoff} for p in self.partitions],
            "next": self.next_commands,
        }


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class Coordinator:
    """Runs cutover steps for the groups a bridge config replaces. ``say`` receives the lines an
    operator should read while a step runs (the CLI prints them)."""

    def __init__(
        self,
        cfg: BridgeConfig,
        connection: KafkaConnection,
        *,
        qstash: QStashConnection | None = None,
        admin: GroupOffsetAdmin | None = None,
        say: Callable[[str], None] | None = None,
        poll: float = 0.5,
        where: str = "bridge config",
        bridge_wait: float = 20.0,
    ) -> None:
        self.cfg = cfg
        self.connection = connection
        self.qstash = qstash
        self.admin = admin or GroupOffsetAdmin(connection, timeout=30.0)
        self.store = CutoverStore(connection, cfg.cutover_topic, self.admin)
        self._say = say or (lambda text: log.info("%s", text))
        self._poll = poll
        self._where = where
        self.bridge_wait = bridge_wait

    def close(self) -> None:
        self.store.close()

    # -- scope -------------------------------------------------------------------------------

    def partitions(self, group: str) -> list[Partition]:
        require_routed(self.cfg, group, self._where)
        topics = routed_topics(self.cfg, group)
        found = self.admin.describe_topics(topics)
        missing = [t for t in topics if t not in found]
        if missing:
            raise ConfigError(f"{self._where}: topic(s) {missing} routed for group {group!r} do "
                              "not exist in Kafka; create them or fix the route.")
        return [(t, p.partition) for t in topics for p in found[t].partitions]

    def load(self, group: str) -> GroupCutover:
        require_routed(self.cfg, group, self._where)
        return self.store.load(group, bridge_group(self.cfg, group))

    def _known_group(self, group: str, parts: Sequence[Partition]) -> GroupSnapshot:
        snap = snapshot(self.admin, group, parts)
        if not snap.members and not snap.offsets and snap.state in ("DEAD", "UNKNOWN"):
            raise ConfigError(
                f"Kafka has no consumer group {group!r} with members or committed offsets on "
                f"{sorted({t for t, _ in parts})}; check the name (`migrator audit` lists the groups)."
            )
        return snap

    # -- steps -------------------------------------------------------------------------------

    def prepare(self, group: str) -> GroupCutover:
        parts = self.partitions(group)
        self._known_group(group, parts)
        self.store.ensure()
        current = self.load(group)
        check_step(group, current.state, "prepare")
        if current.state is State.PREPARED:
            return current
        topics = tuple(sorted({t for t, _ in parts}))
        return self.store.save(current.moved(
            State.PREPARED, "the bridge delivers nothing for this group until it is switched",
            topics=topics))

    def require_bridge(self, group: str) -> None:
        """BridgeNotRunningError unless a bridge with this config runs (waiting up to
        ``bridge_wait`` seconds for one that is starting)."""
        name = presence_group(self.cfg)
        deadline = time.monotonic() + self.bridge_wait
        said = False
        while True:
            found = self.admin.describe_groups([name]).get(name)
            if found is not None and found.members:
                return
            if time.monotonic() >= deadline:
                break
            if not said:
                self._say(f"waiting up to {self.bridge_wait:g}s for a bridge with "
                          f"{self._where} (group {name!r})")
                said = True
            time.sleep(self._poll)
        raise BridgeNotRunningError(
            f"no bridge is running with {self._where} (its group {name!r} has no members), "
            f"so nothing would deliver group {group!r} after the switch; start `migrator "
            f"bridge run --config {self._where}` first (or pass --without-bridge to hand off "
            "now: a bridge started later begins at the hand-off). Nothing was changed.")

    def shadow(self, group: str, *, require_bridge: bool = True) -> GroupCutover:
        self.partitions(group)
        current = self.load(group)
        check_step(group, current.state, "shadow")
        if current.state is State.SHADOW:
            return current
        if require_bridge:
            self.require_bridge(group)
        return self.store.save(current.moved(
            State.SHADOW, "endpoints receive records marked Migrator-Shadow: true; the old "
            "consumers stay authoritative"))

    def switch(
        self,
        group: str,
        *,
        watch: float,
        timeout: float,
        overrides: Mapping[Partition, int] | None = None,
        require_bridge: bool = True,
    ) -> GroupCutover:
        parts = self.partitions(group)
        current = self.load(group)
        check_step(group, current.state, "switch")
        if current.state is State.SWITCHED:
            self._say(f"group {group!r} is already switched (hand-off {current.handoff_at}); "
                      "nothing to do")
            return current
        self._check_overrides(group, parts, overrides or {})
        self.admin.require_may_alter(current.bridge_group)  # before anyone stops a consumer
        if require_bridge:
            self.require_bridge(group)
        if current.state is State.SWITCHING and current.handoff:
            again = snapshot(self.admin, group, parts)
            recorded = {(p.topic, p.partition): p.offset for p in current.handoff
                        if p.source == "committed"}
            if not again.members and again.offsets == recorded:
                self._say(f"finishing the interrupted hand-off of group {group!r} "
                          f"(recorded {current.handoff_at}; the old group has not moved since)")
                return self._finish_switch(current, parts, again)
            self._say(f"group {group!r} moved since the interrupted hand-off was recorded; "
                      "fencing again")
        self._say(
            f"Stop every consumer of group {group!r} now. Waiting until the group has no members "
            f"and its committed offsets stay unchanged for {watch:g}s (timeout {timeout:g}s).")
        fenced = await_quiet(self.admin, group, parts, watch=watch, timeout=timeout,
                             poll=self._poll, on_wait=self._say)
        handoff = self._handoff(parts, fenced, overrides or {})
        switching = self.store.save(current.moved(
            State.SWITCHING, f"fenced after {watch:g}s quiet; handing off",
            handoff=handoff, handoff_at=now_iso(),
            topics=tuple(sorted({t for t, _ in parts})), rollback=(), rollback_at=None,
            cancelled=None, switches=current.switches + 1))
        return self._finish_switch(switching, parts, fenced)

    def _check_overrides(self, group: str, parts: Sequence[Partition],
                         overrides: Mapping[Partition, int]) -> None:
        unknown = sorted(set(overrides) - set(parts))
        if unknown:
            raise ConfigError(
                f"--offset: {', '.join(f'{t}:{p}' for t, p in unknown)} is not a partition "
                f"group {group!r} is handed over on; its partitions are topics "
                f"{sorted({t for t, _ in parts})}.")
        if overrides:
            low = self.admin.list_offsets(list(overrides), "earliest")
            high = self.admin.list_offsets(list(overrides), "latest")
            for tp, offset in overrides.items():
                if not low.get(tp, 0) <= offset <= high.get(tp, offset):
                    raise ConfigError(
                        f"--offset {tp[0]}:{tp[1]}={offset}: outside the partition's offsets "
                        f"{low.get(tp)}..{high.get(tp)}.")

    def _handoff(self, parts: Sequence[Partition], fenced: GroupSnapshot,
                 overrides: Mapping[Partition, int]) -> tuple[PartitionOffset, ...]:
        at = now_iso()
        low = self.admin.list_offsets(list(parts), "earliest")
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

    def _finish_switch(self, switching: GroupCutover, parts: Sequence[Partition],
                       fenced: GroupSnapshot) -> GroupCutover:
        group = switching.group
        bgroup = switching.bridge_group
        bridges = snapshot(self.admin, bgroup, parts)
        if bridges.members:
            raise GroupNotEmptyError(
                f"bridge group {bgroup!r} has {describe_members(bridges.members)} although group "
                f"{group!r} is not switched (a bridge from an older migrator?); stop them and "
                "rerun the switch. The hand-off is recorded; nothing was delivered.")
        try:
            self.admin.alter_group_offsets(bgroup, switching.handoff_map())
        except KafkaAuthError:
            # the principal may not set the bridge group's offsets: nothing was handed over
            self.store.save(switching.moved(
                State.PREPARED, "Kafka refused setting the bridge group's offsets"))
            raise
        after = snapshot(self.admin, group, parts)
        if after.members or after.offsets != fenced.offsets:
            back = self.store.save(switching.moved(
                State.PREPARED, "the old group moved during the hand-off; nothing was delivered"))
            seen = describe_members(after.members) if after.members else "its offsets moved"
            raise FenceTimeoutError(
                f"group {group!r} changed during the hand-off ({seen}); the switch was undone "
                f"(state {back.state.value}, nothing delivered). Stop its consumers and rerun.")
        return self.store.save(switching.moved(
            State.SWITCHED, "bridges deliver from the hand-off offsets"))

    def rollback(self, group: str, *, timeout: float) -> GroupCutover:
        parts = self.partitions(group)
        current = self.load(group)
        check_step(group, current.state, "rollback")
        if current.state is State.ROLLED_BACK:
            self._say(f"group {group!r} is already rolled back ({current.rollback_at}); "
                      "nothing to do")
            return current
        self.admin.require_may_alter(group)  # before the bridges stop delivering it
        if current.state is State.SWITCHED:
            current = self.store.save(current.moved(
                State.ROLLING_BACK, "bridges stop delivering this group: drain, commit, leave"))
        self._await_bridges_gone(current, parts, timeout)
        old = snapshot(self.admin, group, parts)
        if old.members:
            raise GroupNotEmptyError(
                f"group {group!r} has {describe_members(old.members)}: its old consumers run "
                "again before their offsets were set back. Stop them and rerun the rollback "
                "(state stays rolling_back; the bridges deliver nothing for it).")
        if not current.rollback:
            current = self.store.save(current.moved(
                State.ROLLING_BACK, "rollback offsets decided",
                **self._rollback_offsets(current, parts)))
        self.admin.alter_group_offsets(group, current.rollback_map())
        return self.store.save(current.moved(
            State.ROLLED_BACK, "the old group's committed offsets point at the first record the "
            "endpoint did not get; restart the old consumers"))

    def _await_bridges_gone(self, current: GroupCutover, parts: Sequence[Partition],
                            timeout: float) -> None:
        deadline = time.monotonic() + timeout
        said = False
        while True:
            snap = snapshot(self.admin, current.bridge_group, parts)
            if not snap.members:
                return
            if time.monotonic() >= deadline:
                raise GroupNotEmptyError(
                    f"bridge group {current.bridge_group!r} still has "
                    f"{describe_members(snap.members)} after {timeout:g}s; bridges of an older "
                    "version, or stuck draining? Rerun the rollback to keep waiting (state "
                    "stays rolling_back).")
            if not said:
                self._say(f"waiting for the bridges to drain, commit and leave group "
                          f"{current.bridge_group!r} ({describe_members(snap.members)})")
                said = True
            time.sleep(self._poll)

    def _rollback_offsets(self, current: GroupCutover, parts: Sequence[Partition]) -> dict[str, Any]:
        group = current.group
        committed = self.admin.list_group_offsets([current.bridge_group]).get(
            current.bridge_group, {})
        handoff = current.handoff_map()
        cancellation = Cancellation(0)
        delivered: dict[Partition, int] = {}
        if self._uses_qstash(group):
            if self.qstash is None:
                raise ConfigError(f"group {group!r} is delivered through QStash but no QStash "
                                  "token is configured (qstash.token or QSTASH_TOKEN).")
            since = _ms(current.handoff_at) - 60_000 if current.handoff_at else 0
            label = cutover_label(group, current.switches)
            cancellation = cancel_pending(self.qstash.url, self.qstash.bearer, label, since_ms=since)
            self._say(f"cancelled {cancellation.cancelled} message(s) QStash held for group "
                      f"{group!r} ({cancellation.logged} cancelled since the hand-off)")
            ordered = self._ordered_topics(group)
            floor = {tp: committed.get(tp, handoff.get(tp, 0)) or 0
                     for tp in parts if tp[0] in ordered}
            if floor:
                # a bridge killed with -9 may have published (in order) past its last commit
                delivered = last_delivered(self.qstash.url, self.qstash.bearer, label, floor, since_ms=since)
        at = now_iso()
        out = []
        for tp in parts:
            start = handoff.get(tp, 0)
            done = committed.get(tp)
            offset, source = (done, "bridge-committed") if done is not None else (start, "handoff")
            if tp in delivered and delivered[tp] + 1 > offset:
                offset, source = delivered[tp] + 1, "delivered"
            first = cancellation.first_cancelled.get(tp)
            if first is not None and first < offset:
                offset, source = first, "cancelled"
            out.append(PartitionOffset(topic=tp[0], partition=tp[1], offset=max(offset, start),
                                       at=at, source=source))
        return {"rollback": tuple(out), "rollback_at": at, "cancelled": cancellation.cancelled}

    def _ordered_topics(self, group: str) -> set[str]:
        """Topics whose route is ordered with exactly one QStash destination for ``group``:
        the bridge published their partitions in offset order, so what QStash delivered is a
        prefix of what it was given."""
        out = set()
        for route in self.cfg.routes:
            mine = [d for d in route.destinations if d.replaces_group == group]
            if route.ordered and len(mine) == 1 and not isinstance(mine[0], DirectHttpDestination):
                out.add(route.topic)
        return out

    def _uses_qstash(self, group: str) -> bool:
        return any(d.replaces_group == group and not isinstance(d, DirectHttpDestination)
                   for r in self.cfg.routes for d in r.destinations)

    # -- status ------------------------------------------------------------------------------

    def status(self, groups: Sequence[str] | None = None) -> list[GroupStatus]:
        from migrator.cutover.scope import replaced_groups

        names = list(groups) if groups else replaced_groups(self.cfg)
        states = self.store.all()
        out = []
        for group in names:
            parts = self.partitions(group)
            current = states.get(group) or GroupCutover(group=group,
                                                        bridge_group=bridge_group(self.cfg, group))
            old = snapshot(self.admin, group, parts)
            bridge = snapshot(self.admin, current.bridge_group, parts)
            ends = self.admin.list_offsets(parts, "latest")
            handoff = current.handoff_map()
            out.append(GroupStatus(current, old, bridge, tuple(
                PartitionStatus(t, p, ends.get((t, p), 0), old.offsets.get((t, p)),
                                bridge.offsets.get((t, p)), handoff.get((t, p)))
                for t, p in parts)))
        return out
