"""The cutover steps per replaced consumer group: prepare, shadow, switch, rollback, status.

Each step writes its state to the cutover topic *before* it changes anything in Kafka (with what
it decided: hand-off or rollback offsets) and again after, and every Kafka change it makes is
idempotent (setting committed offsets to recorded values), so a step killed at any point is
finished by running it again. ``switch`` is :mod:`migrator.cutover.switch`, ``rollback``
:mod:`migrator.cutover.rollback`.

A step holds the group's lease (:mod:`migrator.cutover.lease`) and makes every write that
matters through :meth:`Coordinator.save`, :meth:`Coordinator.set_offsets` or after
:meth:`Coordinator.ensure_held`: once the lease is lost the step stops before its next write with
:class:`~migrator.errors.LeaseLostError`, saying what it had done; its state stays resumable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager

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
from migrator.errors import BridgeNotRunningError, ConfigError, LeaseLostError, ServiceError
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
        self._leases: list[Lease] = []
        self._changes: list[str] = []  # what the running step wrote, for a LeaseLostError

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
    def leased(self, group: str, step: str) -> Iterator[None]:
        """Hold the group's lease (:mod:`migrator.cutover.lease`) while a step runs. Without a
        cutover topic nothing was ever prepared: there is nothing to keep apart yet."""
        with self.leased_all([group], step):
            yield

    @contextmanager
    def leased_all(self, groups: Iterable[str], step: str) -> Iterator[None]:
        """Hold the lease of every group in ``groups`` (LeaseHeldError, releasing those taken,
        when one is held elsewhere)."""
        groups = list(groups)
        for group in groups:
            require_routed(self.cfg, group, self.where)
        if not self.store.exists():
            yield
            return
        self._changes = []
        with ExitStack() as stack:
            for group in groups:
                lease = stack.enter_context(Lease(self.connection, self.cfg.cutover_topic,
                                                  group, step, ttl=self.lease_ttl))
                self._leases.append(lease)
                stack.callback(self._leases.remove, lease)
            yield

    def ensure_held(self, doing: str) -> None:
        """LeaseLostError, saying what this step had done, unless every lease held still
        surely holds; call before each write that matters (``doing``: that write)."""
        for lease in self._leases:
            try:
                lease.ensure_held()
            except LeaseLostError as exc:
                done = "; ".join(self._changes) or "nothing"
                rerun = f"migrator cutover {lease.step}" + (
                    "" if lease.step == "finish" else f" {lease.group}")
                raise LeaseLostError(
                    f"{exc}; stopped before {doing}. Done by this command: {done}. Rerun "
                    f"`{rerun}` to resume (once the command holding the lease now has "
                    "finished).") from None

    def save(self, state: GroupCutover) -> GroupCutover:
        """Record a state transition of a leased step."""
        self.ensure_held(f"recording {state.state.value} ({state.note})")
        saved = self.store.save(state)
        self._changes.append(f"recorded {saved.state.value}")
        return saved

    def set_offsets(self, group: str, offsets: Mapping[Partition, int], why: str) -> None:
        """Set ``group``'s committed offsets in a leased step (``why``: for the record)."""
        self.ensure_held(f"setting the committed offsets of group {group!r} ({why})")
        self.admin.alter_group_offsets(group, dict(offsets))
        self._changes.append(f"set the committed offsets of group {group!r} ({why})")

    def changed(self, what: str) -> None:
        """Note a write made after :meth:`ensure_held` (for the LeaseLostError message)."""
        self._changes.append(what)

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
        return self.save(current.moved(
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
        return self.save(current.moved(
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
