"""What QStash did with the messages of one hand-off, once every one of them has settled, and the
exact rollback point it gives per partition.

After a rollback has stopped the group's bridges and cancelled what QStash still held, a message
may still be *in flight* (QStash is calling the endpoint: a cancel does not interrupt that call;
its outcome is logged when the call ends). :func:`settle` reads QStash's logs for the hand-off's
label until every message published since the hand-off has a final state (``DELIVERED``,
``FAILED``, ``CANCELED``), or raises after ``timeout``. :func:`rollback_points` then decides,
per partition, the first record the endpoint did NOT get (the old group's new committed offset)
and the records above it that it DID get (the skip list: QStash delivers an unordered route's
messages in parallel, so what the endpoint got need not be a prefix of the partition).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from migrator.cutover.qstash_logs import LogReader, coordinate
from migrator.errors import FenceTimeoutError

__all__ = ["FINAL_STATES", "HandoffOutcome", "QStashCounts", "RollbackPoint", "rollback_points",
           "settle", "tally", "to_ranges"]

log = logging.getLogger(__name__)

Partition = tuple[str, int]
FINAL_STATES = ("DELIVERED", "FAILED", "CANCELED", "CANCELLED")


@dataclass
class HandoffOutcome:
    """Per partition, the offsets QStash delivered (a 2xx from the endpoint) and the ones it did
    not (cancelled, or failed into the DLQ) since the hand-off."""

    delivered: dict[Partition, set[int]] = field(default_factory=dict)
    not_delivered: dict[Partition, set[int]] = field(default_factory=dict)
    messages: int = 0
    waited: float = 0.0
    cancelled: int = 0  # messages QStash logged CANCELED (its bulk cancel's answer is a match count)

    def count(self, which: str) -> int:
        found: dict[Partition, set[int]] = getattr(self, which)
        return sum(len(v) for v in found.values())


@dataclass(frozen=True)
class QStashCounts:
    """QStash's messages for the group's current hand-off, by their latest state."""

    delivered: int
    pending: int  # accepted, not delivered yet (waiting, in a queue, in flight, between retries)
    failed: int  # retries exhausted: in QStash's DLQ
    cancelled: int

    def to_json(self) -> dict[str, int]:
        return {"delivered": self.delivered, "pending": self.pending, "failed": self.failed,
                "cancelled": self.cancelled}


@dataclass(frozen=True)
class RollbackPoint:
    offset: int
    source: str  # handoff | bridge-committed | delivered | cancelled
    skip: tuple[int, ...] = ()  # offsets above ``offset`` the endpoint already processed


def _final(entries: Iterable[Mapping[str, Any]],
           into: dict[str, tuple[str, Mapping[str, Any]]] | None = None,
           ) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Each message's final state (``into``, updated). ``DELIVERED`` outranks any other: the
    endpoint answered 2xx, whatever QStash logged about the message besides (a cancel that
    reached it after the delivery, in whichever order the logs list them)."""
    out = {} if into is None else into
    for entry in entries:
        state = str(entry.get("state", "")).upper()
        mid = entry.get("messageId")
        if state not in FINAL_STATES or not isinstance(mid, str):
            continue
        if mid not in out or (state == "DELIVERED" and out[mid][0] != "DELIVERED"):
            out[mid] = (state, entry)
    return out


def settle(reader: LogReader, label: str, *, since_ms: int, timeout: float, poll: float = 0.5,
           on_wait: Callable[[str], None] | None = None) -> HandoffOutcome:
    """Wait until every message labelled ``label`` since ``since_ms`` has a final state, then
    return what was delivered. :class:`FenceTimeoutError` (nothing decided) after ``timeout``."""
    started = time.monotonic()
    created: dict[str, Mapping[str, Any]] = {}
    for entry in reader.logs(label=label, state="CREATED", from_ms=since_ms):
        mid = entry.get("messageId")
        if isinstance(mid, str):
            created.setdefault(mid, entry)
    final: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for state in ("DELIVERED", "FAILED", "CANCELED"):
        _final(reader.logs(label=label, state=state, from_ms=since_ms), final)
    said = False
    while True:
        open_ids = [m for m in created if m not in final]
        if not open_ids:
            break
        if time.monotonic() - started >= timeout:
            raise FenceTimeoutError(
                f"{len(open_ids)} QStash message(s) labelled {label} were still being delivered "
                f"after {timeout:g}s (e.g. {open_ids[0]}); their outcome decides the rollback "
                "point. Nothing was set; rerun the rollback (state stays rolling_back).")
        if not said and on_wait is not None:
            on_wait(f"waiting for {len(open_ids)} QStash message(s) in flight to settle "
                    "(delivered or cancelled)")
            said = True
        time.sleep(poll)
        _final(reader.logs_of(open_ids), final)
    out = HandoffOutcome(messages=len(created), waited=time.monotonic() - started,
                         cancelled=sum(s in ("CANCELED", "CANCELLED") for s, _e in final.values()))
    for mid, (state, last) in final.items():
        first = created.get(mid)
        coord = coordinate(last) or (coordinate(first) if first is not None else None)
        if coord is None:
            continue
        tp, offset = (coord[0], coord[1]), coord[2]
        bucket = out.delivered if state == "DELIVERED" else out.not_delivered
        bucket.setdefault(tp, set()).add(offset)
    log.info("hand-off %s: %d message(s), %d delivered, %d not (waited %.1fs)", label,
             out.messages, out.count("delivered"), out.count("not_delivered"), out.waited)
    return out


def tally(reader: LogReader, label: str, *, since_ms: int) -> QStashCounts:
    """QStash's messages labelled ``label`` since ``since_ms`` by their latest state."""
    created = {mid for e in reader.logs(label=label, state="CREATED", from_ms=since_ms)
               if isinstance(mid := e.get("messageId"), str)}
    final: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for state in ("DELIVERED", "FAILED", "CANCELED"):
        _final(reader.logs(label=label, state=state, from_ms=since_ms), final)
    states = [s for s, _e in final.values()]
    return QStashCounts(delivered=states.count("DELIVERED"), failed=states.count("FAILED"),
                        cancelled=states.count("CANCELED") + states.count("CANCELLED"),
                        pending=len(created - set(final)))


def rollback_points(parts: Sequence[Partition], handoff: Mapping[Partition, int],
                    committed: Mapping[Partition, int | None],
                    outcome: HandoffOutcome | None) -> dict[Partition, RollbackPoint]:
    """Per partition, the first offset at or after the hand-off that the endpoint did not get,
    and the offsets above it that it did get.

    A record counts as handled when QStash delivered it, or when the bridge committed past it
    and QStash did not cancel or fail it (a direct HTTP delivery, or a record the route does not
    publish); a record QStash cancelled or failed is never handled."""
    out: dict[Partition, RollbackPoint] = {}
    for tp in parts:
        start = handoff.get(tp, 0)
        done = committed.get(tp)
        upto = max(start, done) if done is not None else start
        got = outcome.delivered.get(tp, set()) if outcome else set()
        lost = outcome.not_delivered.get(tp, set()) if outcome else set()

        def handled(offset: int, upto: int = upto, got: set[int] = got,
                    lost: set[int] = lost) -> bool:
            return offset not in lost and (offset in got or offset < upto)

        offset = start
        while handled(offset):
            offset += 1
        if offset in lost:
            source = "cancelled"
        elif offset > upto:
            source = "delivered"
        elif done is not None and offset == done:
            source = "bridge-committed"
        else:
            source = "handoff"
        skip = tuple(sorted(o for o in got if o > offset and o not in lost))
        out[tp] = RollbackPoint(offset, source, skip)
    return out


def to_ranges(offsets: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Sorted offsets as inclusive ``(first, last)`` runs: 3,4,5,9 -> (3, 5), (9, 9)."""
    runs: list[tuple[int, int]] = []
    for o in sorted(set(offsets)):
        if runs and o == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], o)
        else:
            runs.append((o, o))
    return tuple(runs)
