"""What a bridge config routes for one replaced consumer group.

A destination names the group it replaces (``replaces_group: billing``). For each such group the
bridge runs one :class:`~migrator.bridge.runner.Bridge` of its own, in its own consumer group
(``<group prefix>.<replaced group>``, e.g. ``migrator-bridge.billing``), over that group's
destinations only: the hand-off is then a copy of committed offsets from the old group to that
bridge group, rollback the copy back, and a topic read by two replaced groups (fan-out) is read
once per group, as Kafka itself does. QStash messages of a group carry a label naming it, so a
rollback can cancel the ones QStash still holds.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from migrator.bridge.config import BridgeConfig, DirectHttpDestination, Route
from migrator.errors import ConfigError

__all__ = [
    "SHADOW_HEADER",
    "bridge_group",
    "cutover_label",
    "group_config",
    "presence_group",
    "replaced_groups",
    "require_routed",
    "routed_topics",
    "shadow_group",
    "ungated_config",
]

SHADOW_HEADER = "Migrator-Shadow"
_LABEL_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def replaced_groups(cfg: BridgeConfig) -> list[str]:
    """Every group named by a destination's ``replaces_group``, in order of appearance."""
    seen: dict[str, None] = {}
    for route in cfg.routes:
        for dest in route.destinations:
            if dest.replaces_group:
                seen[dest.replaces_group] = None
    return list(seen)


def require_routed(cfg: BridgeConfig, group: str, where: str) -> None:
    """ConfigError unless a destination of ``cfg`` replaces ``group``."""
    groups = replaced_groups(cfg)
    if group not in groups:
        known = ", ".join(groups) or "none"
        raise ConfigError(
            f"{where}: no destination replaces consumer group {group!r} (groups replaced: "
            f"{known}); add `replaces_group: {group}` to the destination that takes over its work."
        )


def bridge_group(cfg: BridgeConfig, group: str) -> str:
    """The bridge's consumer group for one replaced group."""
    return f"{cfg.group}.{group}"


def presence_group(cfg: BridgeConfig) -> str:
    """The consumer group every running bridge of this config is a member of (it reads nothing
    there): `switch` refuses when it has no members, since no bridge would take the group."""
    return f"{cfg.group}.bridges"


def shadow_group(cfg: BridgeConfig, group: str) -> str:
    return f"{cfg.group}.{group}.shadow"


def cutover_label(group: str, epoch: int) -> str:
    """The Upstash-Label on every QStash message delivered for ``group`` after its ``epoch``-th
    hand-off (letters, digits, ``_``, ``.``, ``-``; a hash keeps two groups that differ only in
    other characters apart). One label per hand-off: a rollback cancels and accounts for the
    messages of the hand-off it undoes, not those an earlier rollback cancelled."""
    safe = _LABEL_SAFE.sub("_", group)
    if safe != group:
        safe += "-" + hashlib.sha256(group.encode()).hexdigest()[:8]
    return f"migrator-cutover.{safe}.{epoch}"


def _routes_for(cfg: BridgeConfig, keep: Iterable[str | None], *, label: str | None,
                shadow: bool, epoch: int = 1) -> list[Route]:
    wanted = set(keep)
    out: list[Route] = []
    for route in cfg.routes:
        dests = []
        for dest in route.destinations:
            if dest.replaces_group not in wanted:
                continue
            update: dict[str, object] = {}
            if shadow:
                update["headers"] = {**dest.headers, SHADOW_HEADER: "true"}
            if label is not None and not isinstance(dest, DirectHttpDestination):
                update["label"] = f"{dest.label},{label}" if dest.label else label
            dests.append(dest.model_copy(update=update) if update else dest)
        if dests:
            update_route: dict[str, object] = {"destinations": dests}
            # the dedup-id tag hashes the route name: shadow delivery, and every hand-off after
            # the first, get ids of their own (QStash would drop a record re-sent after a
            # rollback cancelled it as a duplicate of the cancelled message)
            name = route.route_name if epoch <= 1 else f"{route.route_name}.switch{epoch}"
            if shadow:
                name = f"{route.route_name}.shadow"
            if name != route.route_name:
                update_route["name"] = name
            out.append(route.model_copy(update=update_route))
    return out


def routed_topics(cfg: BridgeConfig, group: str) -> list[str]:
    return [r.topic for r in _routes_for(cfg, [group], label=None, shadow=False)]


def group_config(cfg: BridgeConfig, group: str, *, shadow: bool = False,
                 epoch: int = 1) -> BridgeConfig:
    """The config of the bridge delivering ``group``'s records (live, or marked as shadow);
    ``epoch`` is the group's hand-off count (see :attr:`GroupCutover.switches`)."""
    label = None if shadow else cutover_label(group, epoch)
    routes = _routes_for(cfg, [group], label=label, shadow=shadow, epoch=epoch)
    if not routes:
        raise ConfigError(f"bridge config: no destination replaces consumer group {group!r}")
    update: dict[str, object] = {"routes": routes, "metrics_port": None}
    if shadow:
        # a shadow run follows the old group from where it is now, under its own group
        update.update(group=shadow_group(cfg, group), start="start_from_group",
                      start_from_group=group)
    else:
        # the hand-off committed an offset for every partition; a partition added later
        # starts at its beginning
        update.update(group=bridge_group(cfg, group), start="earliest")
    return cfg.model_copy(update=update)


def ungated_config(cfg: BridgeConfig) -> BridgeConfig | None:
    """The config for destinations that replace no group (always delivered), if any."""
    routes = _routes_for(cfg, [None], label=None, shadow=False)
    return cfg.model_copy(update={"routes": routes}) if routes else None
