"""What `migrator bridge check` says about gating: per replaced group, its cutover state and what
the bridge does for it now; and a warning for a destination that replaces no group and would
start at ``earliest`` (the topic's whole retained history, processed a second time by whoever
consumed it before)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from migrator.bridge.config import BridgeConfig
from migrator.config import KafkaConnection
from migrator.cutover.scope import bridge_group, replaced_groups
from migrator.cutover.state import State
from migrator.cutover.store import CutoverStore
from migrator.kafka.group_offsets import GroupOffsetAdmin

__all__ = ["GatedGroup", "earliest_warnings", "gated_groups"]

Partition = tuple[str, int]

_DOES: dict[State, str] = {
    State.OLD: "not prepared: the bridge delivers nothing for it (`migrator cutover prepare {g}`)",
    State.PREPARED: "prepared: the bridge delivers nothing for it until `migrator cutover "
                    "switch {g}`",
    State.SHADOW: "shadow: delivered marked Migrator-Shadow: true; the old consumers stay "
                  "authoritative",
    State.SWITCHING: "switching: a hand-off was interrupted; rerun `migrator cutover switch {g}`",
    State.SWITCHED: "switched: delivered live from the bridge group's committed offsets",
    State.ROLLING_BACK: "rolling back: nothing delivered; rerun `migrator cutover rollback {g}`",
    State.ROLLED_BACK: "rolled back: nothing delivered; the old consumers own it",
}


@dataclass(frozen=True)
class GatedGroup:
    group: str
    bridge_group: str
    state: State
    since: str | None
    handoff_at: str | None

    def line(self) -> str:
        when = f" (hand-off {self.handoff_at})" if self.handoff_at else ""
        return (f"replaced group {self.group!r} -> bridge group {self.bridge_group!r}: "
                + _DOES[self.state].format(g=self.group) + when)

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "bridge_group": self.bridge_group,
                "state": self.state.value, "since": self.since, "handoff_at": self.handoff_at}


def gated_groups(cfg: BridgeConfig, connection: KafkaConnection,
                 timeout: float = 30.0) -> list[GatedGroup]:
    """Every group a destination replaces, with its state in the cutover topic (read-only)."""
    names = replaced_groups(cfg)
    if not names:
        return []
    admin = GroupOffsetAdmin(connection, timeout=timeout)
    store = CutoverStore(connection, cfg.cutover_topic, admin)
    try:
        states = store.all()
    finally:
        store.close()
        admin.close()
    out = []
    for name in names:
        found = states.get(name)
        out.append(GatedGroup(name, bridge_group(cfg, name),
                              found.state if found else State.OLD,
                              found.at or None if found else None,
                              found.handoff_at if found else None))
    return out


def earliest_warnings(cfg: BridgeConfig, committed: Mapping[Partition, int | None],
                      backlog: Mapping[str, int]) -> list[str]:
    """In a config that hands groups over (some destination names ``replaces_group``): a
    destination that replaces none, on a topic where the config's own group has no committed
    offset, starts at ``earliest``: one warning per such destination. (A config without any
    ``replaces_group`` is a plain bridge; its start is its own business.)"""
    if cfg.start != "earliest" or not replaced_groups(cfg):
        return []
    out = []
    for i, route in enumerate(cfg.routes):
        if any(off is not None for (t, _p), off in committed.items() if t == route.topic):
            continue
        for j, dest in enumerate(route.destinations):
            if dest.replaces_group is None:
                out.append(
                    f"routes[{i}].destinations[{j}] replaces no consumer group and bridge group "
                    f"{cfg.group!r} has no committed offsets on {route.topic!r}: it starts at "
                    f"`earliest` and delivers the topic's whole retained history "
                    f"({backlog.get(route.topic, 0):,} records); name the group it takes over "
                    "(`replaces_group: ...`, then `migrator cutover`) or set `start`.")
    return out
