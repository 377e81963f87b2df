"""A lease per replaced group in the cutover topic, so two cutover commands cannot change the same
group at once.

A command appends a *claim* (``lease:<group>:<token>`` -> owner, step, time, expiry) and reads the
topic back: the cutover topic has one partition, so every reader sees the claims in the same
order, and :func:`holder` folds them the same way everywhere: a claim takes the lease when
nobody holds it, when the holder's lease had expired at the claim's time, or when it renews its
own token; a *release* ends it. A claim may also *supersede* the holder named in it: a rerun on
the same machine whose holder's process no longer exists (killed with -9) takes over at once
instead of waiting for the expiry. The command that finds another holder writes a release for its
own claim and stops with :class:`~migrator.errors.LeaseHeldError` naming the holder. The holder
renews its claim every third of the lease's time to live while it runs, so a step may wait
longer than that; a command killed with -9 stops renewing and its lease expires after the time
to live, so a rerun goes ahead (and finishes the interrupted step). Expiry compares the clocks
of the two machines: keep them in sync (NTP) or the time to live well above their skew.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType

from migrator.config import KafkaConnection
from migrator.errors import LeaseHeldError
from migrator.kafka.state_log import LogEntry, StateLog
from migrator.stack.process import is_alive

__all__ = ["LEASE_PREFIX", "Claim", "Lease", "holder", "owner_name"]

log = logging.getLogger(__name__)

LEASE_PREFIX = "lease:"


def owner_name() -> str:
    """Who runs this command: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


@dataclass(frozen=True)
class Claim:
    token: str
    owner: str
    host: str
    pid: int
    step: str
    at_ms: int
    expires_ms: int

    def dead_here(self) -> bool:
        """True when the claim's process ran on this machine and no longer exists."""
        return self.host == socket.gethostname() and not is_alive(self.pid)

    def describe(self) -> str:
        return (f"`{self.step}` run by {self.owner} pid {self.pid} (lease renewed "
                f"{_iso(self.at_ms)}, "
                f"expires {_iso(self.expires_ms)} unless renewed)")


def holder(entries: Iterable[LogEntry], group: str, now_ms: int) -> Claim | None:
    """The claim holding ``group``'s lease at ``now_ms``, or None."""
    prefix = f"{LEASE_PREFIX}{group}:"
    current: Claim | None = None
    for key, doc, _offset in entries:
        if not key.startswith(prefix):
            continue
        token = str(doc.get("token", ""))
        if doc.get("kind") == "release":
            if current is not None and current.token == token:
                current = None
            continue
        if doc.get("kind") != "claim":
            continue
        try:
            claim = Claim(token, str(doc["owner"]), str(doc["host"]), int(doc["pid"]),
                          str(doc["step"]), int(doc["at_ms"]), int(doc["expires_ms"]))
        except (KeyError, TypeError, ValueError):
            continue
        if (current is None or current.token == token or claim.at_ms >= current.expires_ms
                or doc.get("supersedes") == current.token):
            current = claim
    if current is not None and current.expires_ms <= now_ms:
        return None
    return current


class Lease:
    """``with Lease(...)``: hold ``group``'s lease for one step, renewing it in the background."""

    def __init__(self, connection: KafkaConnection, topic: str, group: str, step: str, *,
                 ttl: float, owner: str | None = None) -> None:
        self.group = group
        self.step = step
        self.ttl = ttl
        self.owner = owner or owner_name()
        self.token = uuid.uuid4().hex
        self._log = StateLog(connection, topic)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _key(self) -> str:
        return f"{LEASE_PREFIX}{self.group}:{self.token}"

    def _claim(self, supersedes: str | None = None) -> None:
        now = int(time.time() * 1000)
        doc: dict[str, object] = {
            "kind": "claim", "group": self.group, "token": self.token, "owner": self.owner,
            "host": socket.gethostname(), "pid": os.getpid(), "step": self.step, "at_ms": now,
            "expires_ms": now + int(self.ttl * 1000)}
        if supersedes:
            doc["supersedes"] = supersedes
        self._log.append(self._key(), doc)

    def _release(self) -> None:
        self._log.append(self._key(), {"kind": "release", "group": self.group,
                                       "token": self.token})

    def acquire(self) -> None:
        before = holder(self._log.read(), self.group, int(time.time() * 1000))
        stale = before is not None and before.dead_here()
        if stale and before is not None:
            log.info("taking over the lease on group %s from %s pid %d (no such process)",
                     self.group, before.owner, before.pid)
        self._claim(supersedes=before.token if stale and before is not None else None)
        found = holder(self._log.read(), self.group, int(time.time() * 1000))
        if found is None or found.token != self.token:
            self._release()
            self._log.close()
            who = found.describe() if found else "another command"
            raise LeaseHeldError(
                f"group {self.group!r} is being changed by {who}; nothing was changed. Wait "
                "until it finishes (or, if it was killed, until its lease expires) and rerun.")
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.group}",
                                        daemon=True)
        self._thread.start()
        log.info("lease on group %s taken by %s for %s", self.group, self.owner, self.step)

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self._claim()
            except Exception as exc:  # the step goes on; the lease may lapse: logged
                log.warning("could not renew the lease on group %s: %s", self.group, exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.ttl)
        try:
            self._release()
        finally:
            self._log.close()

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
