"""Bridges gated by the cutover state: one :class:`Bridge` per replaced consumer group.

:class:`GatedBridges` follows the cutover topic (no restart needed when a state changes) and, for
every group a destination replaces, runs that group's bridge (its own consumer group, its own
destinations, see :mod:`migrator.cutover.scope`) only while the group is ``switched``, or marked
as shadow while it is ``shadow``. Leaving those states stops the group's bridge the way SIGTERM
stops a bridge: stop polling, drain in-flight deliveries, commit, leave the group; that is the
consistent point a rollback sets the old group back to. Destinations that replace no group are
delivered all the time by one more bridge in the config's own group.

All of them share one :class:`BridgeMetrics` (served by ``--metrics-port``); every series carries
the ``group`` label of the bridge consumer group that set it, so two groups reading one topic
have their own lag and committed-offset series, and a group's series go when its bridge stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from migrator.bridge.config import BridgeConfig
from migrator.bridge.metrics import BridgeMetrics
from migrator.bridge.runner import Bridge, BridgeStats
from migrator.config import KafkaConnection, QStashConnection
from migrator.cutover.scope import group_config, presence_group, replaced_groups, ungated_config
from migrator.cutover.state import GroupCutover, State
from migrator.cutover.store import parse_states
from migrator.kafka.consumer import KafkaConsumer
from migrator.kafka.group_offsets import GroupOffsetAdmin
from migrator.kafka.state_log import StateTail

__all__ = ["GatedBridges", "Mode", "mode_for"]

log = logging.getLogger(__name__)

Mode = Literal["live", "shadow"]
BridgeFactory = Callable[..., Bridge]


def mode_for(state: GroupCutover | None) -> Mode | None:
    """What a group's bridge does in a state: deliver live, deliver as shadow, or nothing."""
    if state is None:
        return None
    if state.state is State.SWITCHED:
        return "live"
    if state.state is State.SHADOW:
        return "shadow"
    return None


@dataclass
class _Running:
    group: str | None  # None: the ungated bridge
    mode: Mode
    bridge: Bridge
    epoch: int = 0
    thread: threading.Thread | None = None
    stats: BridgeStats | None = None
    error: BaseException | None = None


class GatedBridges:
    """Run until :meth:`stop`; :meth:`run` re-raises the first fatal error of any bridge."""

    def __init__(
        self,
        config: BridgeConfig,
        connection: KafkaConnection,
        *,
        qstash: QStashConnection | None = None,
        consumer_overrides: dict[str, str] | None = None,
        bridge_factory: BridgeFactory = Bridge,
        poll: float = 0.2,
        metrics: BridgeMetrics | None = None,
    ) -> None:
        self.config = config
        self.connection = connection
        self._qstash = qstash
        self._overrides = consumer_overrides
        self._factory = bridge_factory
        self._poll = poll
        # one set of metrics for every group's bridge (/metrics, /healthz, /readyz of the
        # process); the gate itself keeps the heartbeat while no group is delivered
        self.metrics = metrics or BridgeMetrics()
        self._groups = replaced_groups(config)
        self._states: dict[str, GroupCutover] = {}
        self._running: dict[str | None, _Running] = {}
        self._draining: dict[str | None, _Running] = {}  # stopped, still draining
        self._stopping = threading.Event()
        self.totals = BridgeStats()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def modes(self) -> dict[str, Mode | None]:
        """The mode each replaced group's bridge runs in now (for tests and logs)."""
        return {g: (r.mode if (r := self._running.get(g)) is not None else None)
                for g in self._groups}

    def run(self) -> BridgeStats:
        admin = GroupOffsetAdmin(self.connection)
        try:
            admin.ensure_compacted_topic(self.config.cutover_topic)
        finally:
            admin.close()
        tail = StateTail(self.connection, self.config.cutover_topic)
        # membership in the presence group tells `migrator cutover switch` a bridge is running
        presence = KafkaConsumer(self.connection, presence_group(self.config),
                                 defaults={**(self._overrides or {}),
                                           "client.id": "migrator-bridge"})
        presence.subscribe([self.config.cutover_topic])
        try:
            self._apply(tail.read_to_end())
            rest = ungated_config(self.config)
            if rest is not None:
                self._start(None, "live", rest)
            while not self._stopping.is_set():
                self._raise_failed()
                self._reap()
                self.metrics.heartbeat = time.monotonic()
                self.metrics.ready = True
                presence.consume(100, 0)
                self._apply(tail.poll(self._poll))
        finally:
            try:
                for key in list(self._running):
                    self._stop(key)
                for running in list(self._draining.values()):
                    if running.thread is not None:
                        running.thread.join()
                self._reap()
            finally:
                presence.close()
                tail.close()
        self._raise_failed()
        return self.totals

    # -- internals ---------------------------------------------------------------------------

    def _apply(self, entries: list[Any]) -> None:
        for group, found in parse_states(entries).items():
            if group in self._groups:
                self._states[group] = found
        for group in self._groups:
            state = self._states.get(group)
            want = mode_for(state)
            epoch = state.switches if state is not None else 0
            running = self._running.get(group)
            if running is not None and (running.mode != want or running.epoch != epoch):
                self._stop(group)  # a new hand-off restarts the bridge at its offsets
                running = None
            if running is None and want is not None and group not in self._draining:
                self._start(group, want, group_config(self.config, group,
                                                      shadow=want == "shadow", epoch=epoch),
                            epoch)

    def _start(self, group: str | None, mode: Mode, cfg: BridgeConfig, epoch: int = 0) -> None:
        bridge = self._factory(cfg, self.connection, qstash=self._qstash,
                               consumer_overrides=self._overrides, metrics=self.metrics)
        running = _Running(group, mode, bridge, epoch)
        running.thread = threading.Thread(target=self._run_one, args=(running,),
                                          name=f"bridge-{group or 'ungated'}", daemon=True)
        self._running[group] = running
        log.info("group %s: %s delivery starts (bridge group %s)", group or "(none)", mode,
                 cfg.group)
        running.thread.start()

    @staticmethod
    def _run_one(running: _Running) -> None:
        try:
            running.stats = running.bridge.run()
        except BaseException as exc:
            log.error("bridge for group %s failed: %s", running.group, exc)
            running.error = exc

    def _stop(self, key: str | None) -> None:
        """Ask the group's bridge to stop; it drains, commits and leaves in its own thread
        (the gate keeps following the state and the heartbeat meanwhile) and is reaped when
        done. A group's next bridge starts only once the last one is gone."""
        running = self._running.pop(key, None)
        if running is None:
            return
        log.info("group %s: %s delivery stops (drain, commit, leave)", key or "(none)", running.mode)
        running.bridge.stop()
        self._draining[key] = running

    def _reap(self) -> None:
        for key, running in list(self._draining.items()):
            if running.thread is not None and running.thread.is_alive():
                continue
            del self._draining[key]
            self.metrics.remove_group(running.bridge.config.group)  # no stale lag
            stats = running.stats or running.bridge.stats
            for name in ("received", "delivered", "dead_lettered", "skipped", "retries"):
                setattr(self.totals, name, getattr(self.totals, name) + getattr(stats, name))
            if running.error is not None and not self._stopping.is_set():
                raise running.error

    def _raise_failed(self) -> None:
        for key, running in list(self._running.items()):
            if running.error is not None:
                self._running.pop(key, None)
                raise running.error
