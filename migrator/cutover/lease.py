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

Losing the lease is a hard stop. A renewal counts only once it is read back as the holder; the
step calls :meth:`Lease.ensure_held` before each write that matters, which raises
:class:`~migrator.errors.LeaseLostError` once the last confirmed renewal is within a third of
the time to live of expiring (a holder paused, or cut off from Kafka, past that point may have
been overtaken), or once a renewal read back another holder. The loss is final for the command:
a renewal that gets the lease back after it lapsed does not count, since another command may
have changed the group meanwhile and this step's view of it is stale.
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
from migrator.errors import LeaseHeldError, LeaseLostError
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
        self._guard = threading.Lock()
        self._held_until_ms = 0  # expiry of the last claim read back as the holder
        self._renewed_ms = 0
        self._lost: str | None = None  # why the lease was lost; final once set

    def _key(self) -> str:
        return f"{LEASE_PREFIX}{self.group}:{self.token}"

    def _claim(self, supersedes: str | None = None, timeout: float = 30.0) -> int:
        """Append a claim; returns its expiry."""
        now = int(time.time() * 1000)
        doc: dict[str, object] = {
            "kind": "claim", "group": self.group, "token": self.token, "owner": self.owner,
            "host": socket.gethostname(), "pid": os.getpid(), "step": self.step, "at_ms": now,
            "expires_ms": now + int(self.ttl * 1000)}
        if supersedes:
            doc["supersedes"] = supersedes
        self._log.append(self._key(), doc, timeout=timeout)
        return now + int(self.ttl * 1000)

    def _release(self) -> None:
        self._log.append(self._key(), {"kind": "release", "group": self.group,
                                       "token": self.token})

    def acquire(self) -> None:
        before = holder(self._log.read(), self.group, int(time.time() * 1000))
        stale = before is not None and before.dead_here()
        if stale and before is not None:
            log.info("taking over the lease on group %s from %s pid %d (no such process)",
                     self.group, before.owner, before.pid)
        expires = self._claim(supersedes=before.token if stale and before is not None else None)
        found = holder(self._log.read(), self.group, int(time.time() * 1000))
        if found is None or found.token != self.token:
            self._release()
            self._log.close()
            who = found.describe() if found else "another command"
            raise LeaseHeldError(
                f"group {self.group!r} is being changed by {who}; nothing was changed. Wait "
                "until it finishes (or, if it was killed, until its lease expires) and rerun.")
        self._confirmed(expires)
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.group}",
                                        daemon=True)
        self._thread.start()
        log.info("lease on group %s taken by %s for %s", self.group, self.owner, self.step)

    def _confirmed(self, expires_ms: int) -> None:
        with self._guard:
            if self._lost is None:
                self._held_until_ms = max(self._held_until_ms, expires_ms)
                self._renewed_ms = int(time.time() * 1000)

    def _lose(self, why: str) -> None:
        with self._guard:
            if self._lost is None:
                self._lost = why
                log.info("lost the lease on group %s: %s", self.group, why)

    def _unconfirmed(self, now_ms: int) -> str | None:
        """Why the lease may have lapsed at ``now_ms`` (None while it surely holds): the last
        confirmed claim expires within a third of the time to live (the margin a write begun
        now has to land before another command may claim the lease)."""
        with self._guard:
            until, renewed = self._held_until_ms, self._renewed_ms
        if now_ms < until - int(self.ttl * 1000) // 3:
            return None
        return (f"no renewal confirmed since {_iso(renewed)} and the lease expired or was "
                f"about to at {_iso(until)}: another command may have taken it and changed "
                "the group")

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            why = self._unconfirmed(int(time.time() * 1000))
            if why is not None:  # lapsed (a paused process): a renewal now proves nothing
                self._lose(why)
                return
            try:
                expires = self._claim(timeout=self.ttl / 3)
                found = holder(self._log.read(timeout=self.ttl / 3), self.group,
                               int(time.time() * 1000))
            except Exception as exc:  # retried; ensure_held stops the step if it lapses
                log.warning("could not renew the lease on group %s: %s", self.group, exc)
                continue
            if found is None or found.token != self.token:
                self._lose(f"{found.describe() if found else 'nobody'} holds it now")
                return
            self._confirmed(expires)

    def ensure_held(self) -> None:
        """LeaseLostError unless the lease surely holds: call before each write that matters."""
        why = self._unconfirmed(int(time.time() * 1000))
        if why is not None:
            self._lose(why)
        with self._guard:
            lost = self._lost
        if lost is not None:
            raise LeaseLostError(f"lost the lease on group {self.group!r} ({lost})")

    @property
    def lost(self) -> bool:
        with self._guard:
            return self._lost is not None

    def release(self) -> None:
        self._stop.set()
        lost = self.lost
        if self._thread is not None:
            self._thread.join(1.0 if lost else self.ttl)
        try:
            self._release()
        except Exception as exc:
            if not lost:
                raise
            # the lease is gone anyway; the step's LeaseLostError is what the operator reads
            log.warning("could not release the lost lease on group %s: %s", self.group, exc)
        finally:
            self._log.close()

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
