"""The processes the demo runs: the ``migrator`` commands, the bridge, and each group's old
consumer (``migrator.kafka.app_consumer``)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from migrator.demo.receiver import Receiver
from migrator.errors import MigratorError

__all__ = ["OldConsumer", "Progress", "bridge_counts", "destinations", "routed", "run_bridge",
           "run_migrator"]

Progress = Callable[[str], None]


def run_migrator(args: list[str], env: dict[str, str], progress: Progress) -> str:
    progress("$ migrator " + " ".join(args))
    out = subprocess.run([sys.executable, "-m", "migrator", *args], capture_output=True, text=True,
                         env=env, timeout=600, check=False)
    if out.returncode != 0:
        raise MigratorError(f"`migrator {' '.join(args)}` exited {out.returncode}: "
                            f"{(out.stderr or out.stdout).strip()[-1500:]}")
    return out.stdout


class OldConsumer:
    """The group's old consumer (``migrator.kafka.app_consumer``) as a process."""

    def __init__(self, bootstrap: str, group: str, topics: list[str], out: Path,
                 progress: Progress) -> None:
        self.cmd = [sys.executable, "-m", "migrator.kafka.app_consumer", bootstrap, group,
                    str(out), *topics]
        self.group, self.out = group, out
        self.proc: subprocess.Popen[str] | None = None
        self.start(progress)

    def start(self, progress: Progress, skip: Path | None = None) -> None:
        progress(f"starting the old consumer of {self.group}")
        cmd = [*self.cmd, "--skip", str(skip)] if skip is not None else self.cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "READY":
            self.kill()  # reaped and its pipe closed: no process left running behind the error
            raise MigratorError(f"the old consumer of {self.group} did not start")

    def stop(self, progress: Progress) -> None:
        progress(f"stopping the old consumer of {self.group} (it commits on shutdown)")
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        self._close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._close()

    def _close(self) -> None:
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()  # the READY pipe

    def processed(self) -> list[tuple[str, int, int]]:
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text(encoding="utf-8").splitlines():
            t, p, o = line.split()
            out.append((t, int(p), int(o)))
        return out


def routed(bridge_file: Path) -> set[str]:
    """The topics a bridge config routes."""
    return set(destinations(bridge_file))


def destinations(bridge_file: Path) -> dict[str, int]:
    """Topic -> how many destinations its route has in a bridge config (messages per record)."""
    import yaml

    data = yaml.safe_load(bridge_file.read_text(encoding="utf-8")) or {}
    return {r["topic"]: len(r.get("destinations", [])) for r in data.get("routes", [])}


_BRIDGE_COUNTS = re.compile(r"bridge stopped: ([\d,]+) records? read, ([\d,]+) messages? sent")


def bridge_counts(log: Path) -> tuple[int, int]:
    """(records read, messages sent) from the bridge's stop summary; -1 when it has none."""
    found = _BRIDGE_COUNTS.search(log.read_text(encoding="utf-8", errors="replace"))
    if found is None:
        return -1, -1
    return int(found.group(1).replace(",", "")), int(found.group(2).replace(",", ""))


def run_bridge(config: Path, env: dict[str, str], receiver: Receiver,
            hand_over: Callable[[], dict[str, int]], timeout: float,
            progress: Progress) -> tuple[dict[str, int], Path]:
    progress(f"$ migrator bridge run --config {config}  (until every record has arrived)")
    log = config.parent / "bridge.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "migrator", "bridge", "run", "--config", str(config)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    expected: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    try:
        expected = hand_over()
        while time.monotonic() < deadline and proc.poll() is None:
            if all(receiver.count(p) >= n for p, n in expected.items()):
                time.sleep(1.0)  # let any duplicate show itself before stopping
                break
            time.sleep(0.25)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()  # its exit status, and no Popen left unreaped
    if proc.returncode not in (0, -signal.SIGTERM):
        raise MigratorError(f"The bridge exited {proc.returncode}; see {log}.")
    progress(f"bridge stopped (log: {log})")
    return expected, log
