"""Run a real Bridge in a background thread against the test estate."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from migrator.bridge.config import BridgeConfig
from migrator.bridge.runner import Bridge, BridgeStats
from migrator.config import KafkaConnection, QStashConnection
from tests.fixtures.wait import wait_until  # the shared helper, re-exported for bridge tests

__all__ = [
    "FAST_GROUP", "BridgeProcess", "RunningBridge", "bridge_config", "running_bridge", "wait_until",
]

FAST_GROUP = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}


def bridge_config(**data: Any) -> BridgeConfig:
    data.setdefault("batch", {"count": 20, "linger_ms": 5})
    data.setdefault("retry", {"initial_backoff": 0.05, "max_backoff": 0.5, "max_attempts": 50})
    return BridgeConfig.model_validate(data)


class RunningBridge:
    def __init__(self, bridge: Bridge, on_tick: Callable[[Bridge], None] | None = None) -> None:
        self.bridge = bridge
        self.on_tick = on_tick
        self.error: BaseException | None = None
        self.stats: BridgeStats | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.stats = self.bridge.run(on_tick=self.on_tick)
        except BaseException as exc:
            self.error = exc

    def stop(self, timeout: float = 60.0) -> BridgeStats:
        self.bridge.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "bridge did not stop"
        if self.error is not None:
            raise self.error
        assert self.stats is not None
        return self.stats


@contextmanager
def running_bridge(
    config: BridgeConfig,
    bootstrap: str,
    *,
    qstash: QStashConnection | None = None,
    schema_lookup: Callable[[int], tuple[str, str]] | None = None,
) -> Iterator[RunningBridge]:
    conn = KafkaConnection(bootstrap_servers=bootstrap)
    bridge = Bridge(config, conn, qstash=qstash, consumer_overrides=FAST_GROUP,
                    schema_lookup=schema_lookup)
    rb = RunningBridge(bridge)
    try:
        yield rb
    finally:
        if rb.thread.is_alive():
            bridge.stop()
            rb.thread.join(60)


class BridgeProcess:
    """``migrator bridge run`` as a subprocess (for kill -9 and signal tests).

    It starts with SIGTERM/SIGINT blocked (the signal mask survives exec): one sent while Python
    still starts up stays pending until the bridge installed its handlers and unblocked them
    (:class:`migrator.bridge.stop_signals.StopSignals`), as a supervisor that blocks them around
    the spawn would see. Without that it is a default-action death (-15) under load.
    """

    def __init__(self, config_path: str, env: dict[str, str], *args: str) -> None:
        import os
        import signal
        import subprocess
        import sys
        import tempfile

        fd, self.log_path = tempfile.mkstemp(suffix=".log")
        cmd = [sys.executable, "-m", "migrator", "bridge", "run", "--config", config_path,
               "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500", *args]
        stop_signals = {signal.SIGTERM, signal.SIGINT}
        with os.fdopen(fd, "w") as log:  # the child keeps its own copy of the descriptor
            before = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # this thread only
            try:
                self.process = subprocess.Popen(cmd, stdout=log, stderr=log,
                                                env={**os.environ, **env})
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, before)

    def kill(self) -> None:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self, timeout: float = 60.0) -> int:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def output(self) -> str:
        with open(self.log_path) as fh:
            return fh.read()
