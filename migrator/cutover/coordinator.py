"""The cutover steps per replaced consumer group: prepare, shadow, switch, rollback, status.

Each step writes its state to the cutover topic *before* it changes anything in Kafka (with what
it decided: hand-off or rollback offsets) and again after, and every Kafka change it makes is
idempotent (setting committed offsets to recorded values), so a step killed at any point is
finished by running it again. ``switch`` is :mod:`migrator.cutover.switch`, ``rollback``
:mod:`migrator.cutover.rollback`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import httpx

from migrator.bridge.config import BridgeConfig
from migrator.config import KafkaConnection, QStashConnection
from migrator.cutover import rollback as rollback_step
from migrator.cutover import switch as switch_step
from migrator.cutover.fence import GroupSnapshot, snapshot
from migrator.cutover.group_status import GroupStatus, PartitionStatus
from migrator.cutover.lease import Lease
from migrator.cutover.outcome import QStashCounts, tally
from migrator.cutover.qstash_logs import LogReader
from migrator.cutover.scope import (
    bridge_group,
    cutover_label,
    presence_group,
    replaced_groups,
    require_routed,
    routed_topics,
)
from migrator.cutover.state import GroupCutover, State, Step, check_step
from migrator.cutover.store import CutoverStore
from migrator.errors import BridgeNotRunningError, ConfigError, ServiceError
from migrator.kafka.group_offsets import GroupOffsetAdmin

__all__ = ["Coordinator"]

log = logging.getLogger(__name__)

Partition = tuple[str, int]


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
        lease_ttl: float = 30.0,
    ) -> None:
        self.cfg = cfg
        self.connection = connection
        self.qstash = qstash
        self.admin = admin or GroupOffsetAdmin(connection, timeout=30.0)
        self.store = CutoverStore(connection, cfg.cutover_topic, self.admin)
        self.say = say or (lambda text: log.info("%s", text))
        self.poll = poll
        self.where = where
        self.bridge_wait = bridge_wait
        self.lease_ttl = lease_ttl

    def close(self) -> None:
        self.store.close()

    # -- scope -------------------------------------------------------------------------------

    def partitions(self, group: str) -> list[Partition]:
        require_routed(self.cfg, group, self.where)
        topics = routed_topics(self.cfg, group)
        found = self.admin.describe_topics(topics)
        missing = [t for t in topics if t not in found]
        if missing:
            raise ConfigError(f"{self.where}: topic(s) {missing} routed for group {group!r} do "
                              "not exist in Kafka; create them or fix the route.")
        return [(t, p.partition) for t in topics for p in found[t].partitions]

    def load(self, group: str) -> GroupCutover:
        require_routed(self.cfg, group, self.where)
        return self.store.load(group, bridge_group(self.cfg, group))

    def begin(self, group: str, step: Step) -> tuple[list[Partition], GroupCutover]:
        """The group's partitions and cutover state; IllegalTransitionError unless ``step`` may
        start from that state."""
        parts = self.partitions(group)
        current = self.load(group)
        check_step(group, current.state, step)
        return parts, current

    @contextmanager
    def leased(self, group: str, step: Step) -> Iterator[None]:
        """Hold the group's lease (:mod:`migrator.cutover.lease`) while a step runs. Without a
        cutover topic nothing was ever prepared: there is nothing to keep apart yet."""
        require_routed(self.cfg, group, self.where)
        if not self.store.exists():
            yield
            return
        with Lease(self.connection, self.cfg.cutover_topic, group, step, ttl=self.lease_ttl):
            yield

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
        with self.leased(group, "prepare"):
            return self._prepare(group)

    def _prepare(self, group: str) -> GroupCutover:
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
                self.say(f"waiting up to {self.bridge_wait:g}s for a bridge with "
                         f"{self.where} (group {name!r})")
                said = True
            time.sleep(self.poll)
        raise BridgeNotRunningError(
            f"no bridge is running with {self.where} (its group {name!r} has no members), "
            f"so nothing would deliver group {group!r} after the switch; start `migrator "
            f"bridge run --config {self.where}` first (or pass --without-bridge to hand off "
            "now: a bridge started later begins at the hand-off). Nothing was changed.")

    def shadow(self, group: str, *, require_bridge: bool = True) -> GroupCutover:
        with self.leased(group, "shadow"):
            return self._shadow(group, require_bridge=require_bridge)

    def _shadow(self, group: str, *, require_bridge: bool) -> GroupCutover:
        _parts, current = self.begin(group, "shadow")
        if current.state is State.SHADOW:
            return current
        if require_bridge:
            self.require_bridge(group)
        return self.store.save(current.moved(
            State.SHADOW, "endpoints receive records marked Migrator-Shadow: true; the old "
            "consumers stay authoritative"))

    def switch(self, group: str, *, watch: float, timeout: float,
               overrides: Mapping[Partition, int] | None = None,
               require_bridge: bool = True) -> GroupCutover:
        """Fence the old group and hand it over (:func:`migrator.cutover.switch.switch`)."""
        with self.leased(group, "switch"):
            return switch_step.switch(self, group, watch=watch, timeout=timeout,
                                      overrides=overrides, require_bridge=require_bridge)

    def rollback(self, group: str, *, timeout: float) -> GroupCutover:
        """Hand the group back (:func:`migrator.cutover.rollback.rollback`)."""
        with self.leased(group, "rollback"):
            return rollback_step.rollback(self, group, timeout=timeout)

    # -- status ------------------------------------------------------------------------------

    def status(self, groups: Sequence[str] | None = None) -> list[GroupStatus]:
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
            try:
                counts, error = self._qstash_counts(current), None
            except ServiceError as exc:  # status stays useful while QStash is down
                counts, error = None, str(exc)
            out.append(GroupStatus(current, old, bridge, tuple(
                PartitionStatus(t, p, ends.get((t, p), 0), old.offsets.get((t, p)),
                                bridge.offsets.get((t, p)), handoff.get((t, p)))
                for t, p in parts), counts, error))
        return out

    def _qstash_counts(self, current: GroupCutover) -> QStashCounts | None:
        """What QStash did with the current hand-off's messages; None before any hand-off, for a
        group delivered only by direct HTTP, or without a QStash token."""
        if (self.qstash is None or not current.handoff_at
                or not rollback_step.uses_qstash(self, current.group)):
            return None
        label = cutover_label(current.group, current.switches)
        with httpx.Client(timeout=30.0) as http:
            reader = LogReader(self.qstash.url, self.qstash.bearer, http)
            return tally(reader, label, since_ms=rollback_step.handoff_since_ms(current))
