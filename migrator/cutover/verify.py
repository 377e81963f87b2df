"""Reconcile a switched group at message level: every offset since the hand-off, exactly once.

For every partition a replaced group reads, the range ``[hand-off, bridge committed)`` (for a
rolled-back group: ``[hand-off, rollback offset)``) is read from Kafka, and every offset gets
exactly one outcome per destination:

* QStash destinations: from QStash's own logs (label of the hand-off, forwarded
  ``Kafka-Topic/Partition/Offset`` headers; the final state of each message is its newest log
  entry) and its DLQ (``dlqId``, the endpoint's last status): ``delivered``, ``in_qstash``
  (created, active, retrying), ``failed`` (QStash's DLQ), ``cancelled``, ``duplicate`` (two
  messages delivered for one record, e.g. a replay after the 10-minute dedup window, or a later
  hand-off delivering what an earlier one had), ``gap`` (no message, no dead letter).
* Every destination: ``dead_lettered`` (a dead letter in Kafka naming the record and the
  route, with its reason), ``skipped`` (a tombstone the route's policy skips).
* Direct-HTTP destinations: ``delivered`` on the bridge's word: it commits an offset only after
  the endpoint's success status or a dead letter.
* ``unproven``: QStash could not be asked, or the record is older than QStash's log retention.
* ``not_sampled``: above ``max_records`` delivered entries are read for random time windows
  only (failures, cancels and retries are still read exhaustively, by state).

``deep`` compares the SHA-256 of each delivered body in QStash's logs with the body the route
makes of the Kafka record (decoded where the route decodes): ``body_mismatch``.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx

from migrator.bridge.config import (
    BridgeConfig,
    DirectHttpDestination,
    PublishUrlGroupDestination,
    Route,
)
from migrator.config import KafkaConnection, QStashConnection
from migrator.cutover.qstash_logs import Coordinate, LogReader, body_digest, coordinate
from migrator.cutover.records import DeadLetterSeen, dead_letters, read_range
from migrator.cutover.scope import cutover_label, group_config
from migrator.cutover.state import GroupCutover, State
from migrator.errors import IllegalTransitionError, ServiceError
from migrator.kafka.admin import KafkaAdmin

__all__ = [
    "DEDUP_WINDOW_S",
    "REPORT_VERSION",
    "DestinationReport",
    "Outcome",
    "Verification",
    "verify_group",
]

log = logging.getLogger(__name__)

REPORT_VERSION = 1
DEDUP_WINDOW_S = 600  # QStash keeps deduplication ids for 10 minutes (its docs)
Partition = tuple[str, int]

_PENDING = frozenset({"CREATED", "ACTIVE", "RETRY", "ERROR"})
_CANCELLED = frozenset({"CANCELED", "CANCELLED", "CANCEL_REQUESTED"})


class Outcome(StrEnum):
    DELIVERED = "delivered"
    IN_QSTASH = "in_qstash"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DEAD_LETTERED = "dead_lettered"
    SKIPPED = "skipped"
    GAP = "gap"
    DUPLICATE = "duplicate"
    BODY_MISMATCH = "body_mismatch"
    UNPROVEN = "unproven"
    NOT_SAMPLED = "not_sampled"


# outcomes that make verify fail (exit 1)
BAD = frozenset({Outcome.FAILED, Outcome.CANCELLED, Outcome.DEAD_LETTERED, Outcome.GAP,
                 Outcome.DUPLICATE, Outcome.BODY_MISMATCH, Outcome.UNPROVEN})


@dataclass
class _Msg:
    """What QStash's logs say about one message (its newest entry wins)."""

    coord: Coordinate
    state: str
    created_ms: int
    digest: str | None
    label: str
    status: int | None = None


@dataclass
class DestinationReport:
    """Outcomes of one destination's offsets on one partition."""

    topic: str
    partition: int
    destination: str
    kind: str
    start: int
    end: int
    counts: Counter[str] = field(default_factory=Counter)
    # problem offsets with what was found (offset, detail)
    problems: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, outcome: Outcome, offset: int, **detail: Any) -> None:
        self.counts[outcome.value] += 1
        if outcome not in (Outcome.DELIVERED, Outcome.SKIPPED, Outcome.NOT_SAMPLED):
            self.problems[outcome.value].append({"offset": offset, **detail})

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic, "partition": self.partition, "destination": self.destination,
            "kind": self.kind, "start": self.start, "end": self.end,
            "records": self.end - self.start,
            "counts": {o.value: self.counts.get(o.value, 0) for o in Outcome},
            "body_not_compared": self.counts.get("body_not_compared", 0),
            "problems": {k: v for k, v in sorted(self.problems.items())},
        }


@dataclass
class Verification:
    """The whole report: :meth:`to_json` is the documented, versioned form."""

    group: str
    state: str
    handoff_at: str | None
    switches: int
    since: str
    deep: bool
    destinations: list[DestinationReport] = field(default_factory=list)
    duplicate_risk: list[dict[str, Any]] = field(default_factory=list)
    sample: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    qstash_error: str | None = None
    log_pages: int = 0
    kafka_records: int = 0

    def totals(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for d in self.destinations:
            total.update(d.counts)
        return {o.value: total.get(o.value, 0) for o in Outcome}

    @property
    def ok(self) -> bool:
        t = self.totals()
        return self.qstash_error is None and not any(t[o.value] for o in BAD)

    @property
    def verdict(self) -> str:
        if self.ok:
            return "sampled" if self.sample else "verified"
        if self.qstash_error is not None or self.totals()[Outcome.UNPROVEN.value]:
            return "unproven" if not self._bad_found() else "failed"
        return "failed"

    def _bad_found(self) -> bool:
        t = self.totals()
        return any(t[o.value] for o in BAD if o is not Outcome.UNPROVEN)

    def summary(self) -> str:
        t = self.totals()
        parts = [f"{t[o.value]} {o.value.replace('_', ' ')}" for o in Outcome if t[o.value]]
        records = sum(d.end - d.start for d in self.destinations)
        return (f"group {self.group}: {self.verdict}: {records} record-destination(s) since the "
                f"hand-off: " + (", ".join(parts) or "nothing to verify"))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "group": self.group,
            "state": self.state,
            "handoff_at": self.handoff_at,
            "handoffs": self.switches,
            "since": self.since,
            "deep": self.deep,
            "verdict": self.verdict,
            "ok": self.ok,
            "summary": self.summary(),
            "totals": self.totals(),
            "duplicate_risk": self.duplicate_risk,
            "sample": self.sample,
            "qstash_error": self.qstash_error,
            "qstash_log_pages": self.log_pages,
            "kafka_records_read": self.kafka_records,
            "notes": self.notes,
            "destinations": [d.to_json() for d in self.destinations],
        }


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _dest_name(dest: Any) -> str:
    if isinstance(dest, PublishUrlGroupDestination):
        return f"url-group {dest.url_group}"
    queue = getattr(dest, "queue", None)
    return f"{dest.kind} {dest.url}" + (f" (queue {queue})" if queue else "")


def _matches(dest: Any, entry: dict[str, Any]) -> bool:
    if isinstance(dest, PublishUrlGroupDestination):
        return bool(entry.get("topicName") == dest.url_group)
    return bool(entry.get("url") == dest.url)


@dataclass
class _KafkaSide:
    """What the Kafka records of the range say: tombstones, timestamps, body digests."""

    tombstones: set[Coordinate] = field(default_factory=set)
    timestamps: dict[Coordinate, int] = field(default_factory=dict)
    digests: dict[Coordinate, str] = field(default_factory=dict)
    present: set[Coordinate] = field(default_factory=set)
    undecodable: dict[Coordinate, str] = field(default_factory=dict)


def _read_kafka(connection: KafkaConnection, ranges: dict[Partition, tuple[int, int]],
                routes: dict[str, Route], deep: bool) -> _KafkaSide:
    from migrator.bridge.routes import _codec

    side = _KafkaSide()
    codecs = {t: _codec(r, None) for t, r in routes.items()} if deep else {}
    for rec in read_range(connection, ranges):
        coord = (rec.topic, rec.partition, rec.offset)
        side.present.add(coord)
        if rec.timestamp is not None:
            side.timestamps[coord] = rec.timestamp
        if rec.value is None:
            side.tombstones.add(coord)
            if deep:
                side.digests[coord] = hashlib.sha256(b"").hexdigest()
            continue
        if deep:
            try:
                body, _ctype = codecs[rec.topic].encode(rec)
            except Exception as exc:  # an undecodable record: the bridge dead-letters it
                side.undecodable[coord] = str(exc)[:200]
                continue
            side.digests[coord] = hashlib.sha256(body).hexdigest()
    return side


def _fold(entries: Iterable[dict[str, Any]], dest: Any, label: str,
          into: dict[str, _Msg]) -> None:
    """Keep the newest entry per message (entries come newest first)."""
    for entry in entries:
        mid = entry.get("messageId")
        if not isinstance(mid, str) or not _matches(dest, entry):
            continue
        known = into.get(mid)
        if known is not None:
            if known.digest is None:
                known.digest = body_digest(entry)
            continue
        coord = coordinate(entry)
        if coord is None:
            continue
        status = entry.get("responseStatus")
        into[mid] = _Msg(coord=coord, state=str(entry.get("state", "")).upper(),
                         created_ms=int(entry.get("createdAt") or entry.get("time") or 0),
                         digest=body_digest(entry), label=label,
                         status=status if isinstance(status, int) else None)


def _windows(t0: int, t1: int, n: int, rng: random.Random) -> Iterator[tuple[int, int]]:
    span = max(1, (t1 - t0) // n)
    order = list(range(n))
    rng.shuffle(order)
    for i in order:
        yield t0 + i * span, (t1 if i == n - 1 else t0 + (i + 1) * span - 1)


def verify_group(
    cfg: BridgeConfig,
    state: GroupCutover,
    parts: Sequence[Partition],
    admin: KafkaAdmin,
    connection: KafkaConnection,
    *,
    qstash: QStashConnection | None,
    since_ms: int | None = None,
    deep: bool = False,
    max_records: int = 100_000,
    log_retention_s: float = 3 * 86_400,
    seed: int | None = None,
    client: httpx.Client | None = None,
) -> Verification:
    """Reconcile ``state``'s group (see the module docstring); raises IllegalTransitionError
    for a group that was never handed off."""
    group = state.group
    if state.state not in (State.SWITCHED, State.ROLLING_BACK, State.ROLLED_BACK) \
            or not state.handoff or state.handoff_at is None:
        raise IllegalTransitionError(
            f"group {group!r} is {state.state.value}: nothing was handed off to verify yet; "
            f"next: `migrator cutover switch {group}`.")
    handoff = state.handoff_map()
    ends: dict[Partition, int] = {}
    if state.state is State.ROLLED_BACK and state.rollback:
        ends = state.rollback_map()
    else:
        committed = admin.list_group_offsets([state.bridge_group]).get(state.bridge_group, {})
        ends = {tp: o for tp, o in committed.items() if o is not None}
    starts = dict(handoff)
    since = "handoff"
    if since_ms is not None:
        since = datetime.fromtimestamp(since_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
        at = admin.list_offsets(list(parts), since_ms)
        for tp in parts:
            found = at.get(tp, -1)
            starts[tp] = max(starts.get(tp, 0), found if found >= 0 else ends.get(tp, 0))
    ranges = {tp: (starts.get(tp, 0), max(starts.get(tp, 0), ends.get(tp, starts.get(tp, 0))))
              for tp in parts}
    report = Verification(group=group, state=state.state.value, handoff_at=state.handoff_at,
                          switches=state.switches, since=since, deep=deep)
    gcfg = group_config(cfg, group, epoch=max(1, state.switches))
    routes = {r.topic: r for r in gcfg.routes}
    handoff_ms = _ms(state.handoff_at)
    kafka = _read_kafka(connection, ranges, routes, deep)
    report.kafka_records = len(kafka.present)
    dead: dict[Coordinate, DeadLetterSeen] = {}
    if cfg.dead_letter.topic:
        dead = dead_letters(connection, admin, cfg.dead_letter.topic, ranges,
                            {r.route_name for r in gcfg.routes}, since_ms=handoff_ms - 60_000)
    retention_from = int((time.time() - log_retention_s) * 1000)
    if handoff_ms < retention_from:
        report.notes.append(
            f"the hand-off ({state.handoff_at}) is older than QStash's log retention "
            f"({log_retention_s / 86_400:g} days): records published before then cannot be "
            "proven from QStash and are reported unproven")
    total = sum(e - s for s, e in ranges.values())
    label = cutover_label(group, max(1, state.switches))
    own = client is None
    http = client or httpx.Client(timeout=30.0)
    try:
        for topic, route in routes.items():
            tps = [tp for tp in parts if tp[0] == topic]
            for dest in route.destinations:
                if isinstance(dest, DirectHttpDestination):
                    _direct(report, dest, route, tps, ranges, kafka, dead)
                    continue
                _qstash(report, dest, route, tps, ranges, kafka, dead, qstash=qstash, http=http,
                        label=label, state=state, handoff_ms=handoff_ms, total=total,
                        max_records=max_records, retention_from=retention_from, deep=deep,
                        rng=random.Random(seed))
    finally:
        if own:
            http.close()
    return report


def _direct(report: Verification, dest: DirectHttpDestination, route: Route,
            tps: Sequence[Partition], ranges: dict[Partition, tuple[int, int]],
            kafka: _KafkaSide, dead: dict[Coordinate, DeadLetterSeen]) -> None:
    for tp in tps:
        start, end = ranges[tp]
        d = DestinationReport(tp[0], tp[1], _dest_name(dest), "direct-http", start, end)
        for off in range(start, end):
            coord = (tp[0], tp[1], off)
            if coord in dead:
                dl = dead[coord]
                d.add(Outcome.DEAD_LETTERED, off, reason=dl.reason, status=dl.status,
                      error=dl.error)
            elif coord in kafka.tombstones and route.tombstone == "skip":
                d.add(Outcome.SKIPPED, off)
            else:
                d.add(Outcome.DELIVERED, off, source="bridge-committed")
        report.destinations.append(d)
    if report.deep:
        report.notes.append(f"{_dest_name(dest)}: direct HTTP keeps no record of bodies; "
                            "--deep compares nothing for it")


def _qstash(report: Verification, dest: Any, route: Route, tps: Sequence[Partition],
            ranges: dict[Partition, tuple[int, int]], kafka: _KafkaSide,
            dead: dict[Coordinate, DeadLetterSeen], *, qstash: QStashConnection | None,
            http: httpx.Client, label: str, state: GroupCutover, handoff_ms: int, total: int,
            max_records: int, retention_from: int, deep: bool, rng: random.Random) -> None:
    wanted = {tp: ranges[tp] for tp in tps}

    def in_range(c: Coordinate) -> bool:
        span = wanted.get((c[0], c[1]))
        return span is not None and span[0] <= c[2] < span[1]

    msgs: dict[str, _Msg] = {}
    earlier: Counter[Coordinate] = Counter()
    dlq: dict[str, tuple[str, int | None]] = {}
    sampled: set[Coordinate] | None = None
    error: str | None = None
    if qstash is None:
        error = "no QStash url/token configured"
    else:
        reader = LogReader(qstash.url, qstash.bearer, http)
        try:
            # duplicate risk first: a later hand-off delivers under dedup ids of its own, so a
            # record an earlier hand-off delivered and this one delivered again is a duplicate
            for epoch in range(1, max(1, state.switches)):
                old_label = cutover_label(state.group, epoch)
                for entry in reader.logs(label=old_label, state="DELIVERED",
                                         from_ms=handoff_ms - 60_000 - 86_400_000):
                    c = coordinate(entry)
                    if c is not None and _matches(dest, entry) and in_range(c):
                        earlier[c] += 1
            if total <= max_records:
                _fold(reader.logs(label=label, from_ms=handoff_ms - 60_000), dest, label, msgs)
            else:
                sampled = _sample(reader, dest, label, handoff_ms, max_records, msgs, rng,
                                  report)
            for entry in reader.dlq(label=label):
                mid, dlq_id = entry.get("messageId"), entry.get("dlqId")
                if isinstance(mid, str) and isinstance(dlq_id, str):
                    status = entry.get("responseStatus")
                    dlq[mid] = (dlq_id, status if isinstance(status, int) else None)
        except ServiceError as exc:
            error = str(exc)
            msgs.clear()
        report.log_pages += reader.pages
    if error is not None:
        report.qstash_error = error
    by_coord: dict[Coordinate, list[tuple[str, _Msg]]] = defaultdict(list)
    for mid, m in msgs.items():
        if in_range(m.coord):
            by_coord[m.coord].append((mid, m))
    for c, n in sorted(earlier.items()):
        report.duplicate_risk.append({"topic": c[0], "partition": c[1], "offset": c[2],
                                      "why": f"delivered {n}x by an earlier hand-off"})
    for c, found in sorted(by_coord.items()):
        if len(found) > 1:
            spread = max(m.created_ms for _i, m in found) - min(m.created_ms for _i, m in found)
            report.duplicate_risk.append({
                "topic": c[0], "partition": c[1], "offset": c[2],
                "why": f"{len(found)} QStash messages for one record, published "
                       f"{spread / 1000:.0f}s apart" + (
                           " (beyond the 10-minute dedup window)"
                           if spread > DEDUP_WINDOW_S * 1000 else " (distinct dedup ids)"),
                "messages": sorted(i for i, _m in found)})
    for tp in tps:
        start, end = ranges[tp]
        d = DestinationReport(tp[0], tp[1], _dest_name(dest), dest.kind, start, end)
        for off in range(start, end):
            c = (tp[0], tp[1], off)
            found = by_coord.get(c, [])
            delivered = [(i, m) for i, m in found if m.state == "DELIVERED"]
            if error is not None:
                if c in dead:
                    d.add(Outcome.DEAD_LETTERED, off, reason=dead[c].reason,
                          status=dead[c].status, error=dead[c].error)
                elif c in kafka.tombstones and route.tombstone == "skip":
                    d.add(Outcome.SKIPPED, off)
                else:
                    d.add(Outcome.UNPROVEN, off, why="QStash could not be read")
                continue
            if len(delivered) + earlier.get(c, 0) > 1:
                d.add(Outcome.DUPLICATE, off, messages=[i for i, _m in delivered],
                      earlier_handoffs=earlier.get(c, 0))
            elif delivered:
                mid, m = delivered[0]
                want = kafka.digests.get(c)
                if deep and m.digest is not None and want is not None and m.digest != want:
                    d.add(Outcome.BODY_MISMATCH, off, message=mid, qstash_sha256=m.digest,
                          kafka_sha256=want)
                else:
                    d.add(Outcome.DELIVERED, off)
                    if deep and (m.digest is None or want is None):
                        d.counts["body_not_compared"] += 1
            elif failed := [(i, m) for i, m in found if m.state == "FAILED"]:
                mid, m = failed[0]
                dlq_id, status = dlq.get(mid, (None, m.status))
                d.add(Outcome.FAILED, off, message=mid, dlq_id=dlq_id, status=status)
            elif cancelled := [(i, m) for i, m in found if m.state in _CANCELLED]:
                d.add(Outcome.CANCELLED, off, message=cancelled[0][0])
            elif pending := [(i, m) for i, m in found if m.state in _PENDING]:
                d.add(Outcome.IN_QSTASH, off, message=pending[0][0], qstash_state=pending[0][1].state)
            elif c in dead:
                d.add(Outcome.DEAD_LETTERED, off, reason=dead[c].reason, status=dead[c].status,
                      error=dead[c].error)
            elif c in kafka.tombstones and route.tombstone == "skip":
                d.add(Outcome.SKIPPED, off)
            elif sampled is not None and c not in sampled:
                d.add(Outcome.NOT_SAMPLED, off)
            elif kafka.timestamps.get(c, retention_from) < retention_from:
                d.add(Outcome.UNPROVEN, off, why="older than QStash's log retention")
            elif c not in kafka.present:
                d.add(Outcome.SKIPPED, off, why="not in Kafka (compacted or deleted)")
            else:
                d.add(Outcome.GAP, off)
        report.destinations.append(d)


def _sample(reader: LogReader, dest: Any, label: str, handoff_ms: int, max_records: int,
            msgs: dict[str, _Msg], rng: random.Random, report: Verification) -> set[Coordinate]:
    """Above ``max_records``: every message that is not delivered (failed, cancelled, retrying,
    being delivered) read exhaustively by state, then delivered entries for random time windows
    until ``max_records`` are read. Returns the coordinates the sample covers."""
    suspects: dict[str, _Msg] = {}
    # (not ACTIVE: every delivery attempt logs it, so it would select every message)
    for st in ("FAILED", "CANCELED", "CANCEL_REQUESTED", "RETRY", "ERROR"):
        _fold(reader.logs(label=label, state=st, from_ms=handoff_ms - 60_000), dest, label,
              suspects)
    # their newest entries decide (an ERROR followed by DELIVERED is delivered)
    _fold(reader.logs_of(sorted(suspects)), dest, label, msgs)
    t0, t1 = handoff_ms - 60_000, int(time.time() * 1000)
    windows = 64
    read = 0
    covered_ms = 0
    n_windows = 0
    for lo, hi in _windows(t0, t1, windows, rng):
        before = len(msgs)
        budget = max_records - read

        def capped(entries: Iterator[dict[str, Any]], before: int = before,
                   budget: int = budget) -> Iterator[dict[str, Any]]:
            # stop inside a window once the budget is read (the window's newest entries)
            for entry in entries:
                if len(msgs) - before >= budget:
                    return
                yield entry

        _fold(capped(reader.logs(label=label, state="DELIVERED", from_ms=lo, to_ms=hi)), dest,
              label, msgs)
        read += len(msgs) - before
        covered_ms += hi - lo + 1
        n_windows += 1
        if read >= max_records:
            break
    coords = {m.coord for m in msgs.values()}
    report.sample = {
        "max_records": max_records,
        "delivered_entries_read": read,
        "time_windows": f"{n_windows} of {windows} random windows "
                        f"({100 * covered_ms / max(1, t1 - t0):.1f}% of the time since the hand-off)",
        "proves": "every message QStash failed (DLQ), cancelled or had to retry (read "
                  "exhaustively by state); for sampled records: delivered, once in the "
                  "windows read, and (--deep) the body",
        "does_not_prove": "that records outside the sample were delivered (reported "
                          "not_sampled), nor a second delivery of a record outside the windows "
                          "read; messages QStash queued but never attempted, or delivering for "
                          "the first time right now, are seen only in the sample",
    }
    return coords
