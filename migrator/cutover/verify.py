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

A URL-group destination has one outcome per endpoint of the group (QStash makes one message
per endpoint): a record is delivered to the group only when every endpoint's row says so.

Memory does not grow with the records: Kafka's range and QStash's log pages are streamed into
bitmaps per partition (:mod:`~migrator.cutover.verify_kafka`,
:mod:`~migrator.cutover.verify_qstash`); what is kept per message is kept only for problems.
The report's model is :mod:`~migrator.cutover.verify_model`.

``deep`` compares the SHA-256 of each delivered body in QStash's logs with the body the route
makes of the Kafka record (decoded where the route decodes): ``body_mismatch``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx

from migrator.bridge.config import (
    BridgeConfig,
    DirectHttpDestination,
    PublishUrlGroupDestination,
    Route,
)
from migrator.config import KafkaConnection, QStashConnection
from migrator.cutover.qstash_logs import LogReader
from migrator.cutover.records import DeadLetterSeen, dead_letters
from migrator.cutover.scope import cutover_label, group_config
from migrator.cutover.state import GroupCutover, State
from migrator.cutover.verify_kafka import KafkaPartition, read_kafka
from migrator.cutover.verify_model import (
    DEDUP_WINDOW_S,
    DestinationReport,
    Outcome,
    Verification,
)
from migrator.cutover.verify_qstash import Tally, read_outcomes
from migrator.errors import IllegalTransitionError, ServiceError
from migrator.kafka.admin import KafkaAdmin

__all__ = ["verify_group"]

log = logging.getLogger(__name__)
Partition = tuple[str, int]
Coordinate = tuple[str, int, int]
_KafkaSide = tuple[dict[Partition, KafkaPartition], dict[Coordinate, DeadLetterSeen]]


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _dest_name(dest: Any, endpoint: str | None = None) -> str:
    if isinstance(dest, PublishUrlGroupDestination):
        return f"url-group {dest.url_group}" + (f" -> {endpoint}" if endpoint else "")
    queue = getattr(dest, "queue", None)
    return f"{dest.kind} {dest.url}" + (f" (queue {queue})" if queue else "")


def _ranges(admin: KafkaAdmin, state: GroupCutover, parts: Sequence[Partition],
            since_ms: int | None) -> dict[Partition, tuple[int, int]]:
    """``[hand-off or --since, bridge committed or rollback)`` per partition."""
    if state.state is State.ROLLED_BACK and state.rollback:
        ends = state.rollback_map()
    else:
        committed = admin.list_group_offsets([state.bridge_group]).get(state.bridge_group, {})
        ends = {tp: o for tp, o in committed.items() if o is not None}
    starts = dict(state.handoff_map())
    if since_ms is not None:
        at = admin.list_offsets(list(parts), since_ms)
        for tp in parts:
            found = at.get(tp, -1)
            starts[tp] = max(starts.get(tp, 0), found if found >= 0 else ends.get(tp, 0))
    return {tp: (starts.get(tp, 0), max(starts.get(tp, 0), ends.get(tp, starts.get(tp, 0))))
            for tp in parts}


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
    ranges = _ranges(admin, state, parts, since_ms)
    since = "handoff" if since_ms is None else \
        datetime.fromtimestamp(since_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    report = Verification(group=group, state=state.state.value, handoff_at=state.handoff_at,
                          switches=state.switches, since=since, deep=deep)
    gcfg = group_config(cfg, group, epoch=max(1, state.switches))
    routes = {r.topic: r for r in gcfg.routes}
    handoff_ms = _ms(state.handoff_at)
    retention_from = int((time.time() - log_retention_s) * 1000)
    labels = {r.route_name for r in gcfg.routes}

    # Kafka's range is read in full (in a thread, while QStash's pages are) only when every
    # record matters: --deep compares bodies, direct HTTP has no other witness. Otherwise only
    # where QStash's logs did not show a delivery (a delivered record's outcome does not
    # depend on Kafka): in a clean run, nothing.
    full = deep or any(isinstance(d, DirectHttpDestination)
                       for r in gcfg.routes for d in r.destinations)
    read: list[int] = []

    def read_part(need: Mapping[Partition, tuple[int, int]]) -> dict[Partition, KafkaPartition]:
        kafka = read_kafka(connection, need, routes, deep=deep, retention_from_ms=retention_from)
        read.append(sum(k.records for k in kafka.values()))
        return kafka

    def dead_side() -> dict[Coordinate, DeadLetterSeen]:
        if not cfg.dead_letter.topic:
            return {}
        return dead_letters(connection, admin, cfg.dead_letter.topic, ranges, labels,
                            since_ms=handoff_ms - 60_000)

    if handoff_ms < retention_from:
        report.notes.append(
            f"the hand-off ({state.handoff_at}) is older than QStash's log retention "
            f"({log_retention_s / 86_400:g} days): records published before then cannot be "
            "proven from QStash and are reported unproven")
    total = sum(e - s for s, e in ranges.values())
    own = client is None
    http = client or httpx.Client(timeout=30.0)
    pool = ThreadPoolExecutor(2, thread_name_prefix="verify-kafka")
    dead_f = pool.submit(dead_side)
    full_f = pool.submit(read_part, ranges) if full else None

    def kafka_side(need: Mapping[Partition, tuple[int, int]]) -> _KafkaSide:
        kafka = full_f.result() if full_f is not None else read_part(need)
        return kafka, dead_f.result()

    try:
        for topic, route in routes.items():
            tps = {tp: ranges[tp] for tp in parts if tp[0] == topic}
            for dest in route.destinations:
                if isinstance(dest, DirectHttpDestination):
                    _direct(report, dest, route, tps, *kafka_side(tps))
                    continue
                _qstash(report, dest, route, tps, kafka_side, qstash=qstash, http=http,
                        state=state, handoff_ms=handoff_ms,
                        exhaustive=total <= max_records, max_records=max_records,
                        rng=random.Random(seed))
        if full_f is not None:
            full_f.result()
        report.kafka_records = sum(read)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if own:
            http.close()
    return report


def _kafka_only(d: DestinationReport, off: int, route: Route, kp: KafkaPartition,
                dead: dict[Coordinate, DeadLetterSeen]) -> bool:
    """The outcomes Kafka alone decides: dead-lettered, a skipped tombstone."""
    c = (d.topic, d.partition, off)
    if c in dead:
        dl = dead[c]
        d.add(Outcome.DEAD_LETTERED, off, reason=dl.reason, status=dl.status, error=dl.error)
    elif off in kp.tombstones and route.tombstone == "skip":
        d.add(Outcome.SKIPPED, off)
    else:
        return False
    return True


def _direct(report: Verification, dest: DirectHttpDestination, route: Route,
            tps: dict[Partition, tuple[int, int]], kafka: dict[Partition, KafkaPartition],
            dead: dict[Coordinate, DeadLetterSeen]) -> None:
    for tp, (start, end) in tps.items():
        d = DestinationReport(tp[0], tp[1], _dest_name(dest), "direct-http", start, end)
        for off in range(start, end):
            if not _kafka_only(d, off, route, kafka[tp], dead):
                d.add(Outcome.DELIVERED, off, source="bridge-committed")
        report.destinations.append(d)
    if report.deep:
        report.notes.append(f"{_dest_name(dest)}: direct HTTP keeps no record of bodies; "
                            "--deep compares nothing for it")


def _qstash(report: Verification, dest: Any, route: Route, tps: dict[Partition, tuple[int, int]],
            kafka_side: Callable[[Mapping[Partition, tuple[int, int]]], _KafkaSide], *,
            qstash: QStashConnection | None, http: httpx.Client, state: GroupCutover,
            handoff_ms: int, exhaustive: bool, max_records: int, rng: random.Random) -> None:
    label = cutover_label(state.group, max(1, state.switches))
    group = dest.url_group if isinstance(dest, PublishUrlGroupDestination) else None
    endpoints: list[str] = [] if group is not None else [dest.url]
    tallies: dict[tuple[str, Partition], Tally] = {}
    error: str | None = None
    if qstash is None:
        error = "no QStash url/token configured"
    else:
        reader = LogReader(qstash.url, qstash.bearer, http)
        try:
            if group is not None:
                endpoints = reader.url_group_endpoints(group)
                if not endpoints:
                    raise ServiceError(f"QStash's URL group {group!r} has no endpoints")
            tallies, sample = read_outcomes(
                reader, dest, endpoints, ranges=tps,
                kafka=kafka_side(tps)[0] if report.deep else {}, label=label,
                earlier_labels=[cutover_label(state.group, e)
                                for e in range(1, max(1, state.switches))],
                since_ms=handoff_ms - 60_000, deep=report.deep, exhaustive=exhaustive,
                max_records=max_records, rng=rng)
            if sample is not None:
                report.sample = sample
        except ServiceError as exc:
            error = str(exc)
            tallies = {}
        report.log_pages += reader.pages
    if error is not None:
        report.qstash_error = error
    per_tp = [[tallies.get((u, tp)) for u in endpoints] or [None] for tp in tps]
    kafka, dead = kafka_side(_undecided(tps, per_tp))
    for url in endpoints or [group or "?"]:
        for tp, (start, end) in tps.items():
            d = DestinationReport(tp[0], tp[1], _dest_name(dest, url if group else None),
                                  dest.kind, start, end)
            t = tallies.get((url, tp))
            for off in range(start, end):
                if t is None:
                    if not _kafka_only(d, off, route, kafka[tp], dead):
                        d.add(Outcome.UNPROVEN, off, why="QStash could not be read")
                    continue
                _classify(d, off, t, route, kafka[tp], dead)
            if t is not None:
                _risks(report, d, t)
            report.destinations.append(d)


def _undecided(tps: Mapping[Partition, tuple[int, int]],
               per_tp: Iterable[list[Tally | None]]) -> dict[Partition, tuple[int, int]]:
    """Per partition, the span of offsets some endpoint has no delivery for (empty: none)."""
    out: dict[Partition, tuple[int, int]] = {}
    for (tp, (start, end)), tallies in zip(tps.items(), per_tp, strict=True):
        lo, hi = end, start
        for off in range(start, end):
            if any(t is None or not t.delivered[off] for t in tallies):
                lo, hi = min(lo, off), off + 1
        out[tp] = (lo, hi) if lo < hi else (start, start)
    return out


def _classify(d: DestinationReport, off: int, t: Tally, route: Route, kp: KafkaPartition,
              dead: dict[Coordinate, DeadLetterSeen]) -> None:
    n, earlier = t.delivered[off], t.earlier.get(off, 0)
    if n + earlier > 1:
        d.add(Outcome.DUPLICATE, off, messages=sorted(t.duplicates.get(off, {})),
              earlier_handoffs=earlier)
    elif n == 1:
        if off in t.mismatch:
            mid, got = t.mismatch[off]
            want = kp.digest(off)
            d.add(Outcome.BODY_MISMATCH, off, message=mid, qstash_sha256=got,
                  kafka_sha256_prefix=f"{want:016x}" if want is not None else None)
        else:
            d.add(Outcome.DELIVERED, off)
            if off in t.not_compared:
                d.counts["body_not_compared"] += 1
    elif off in t.failed:
        mid, status = t.failed[off]
        dlq_id, dlq_status = t.dlq.get(mid, (None, status))
        d.add(Outcome.FAILED, off, message=mid, dlq_id=dlq_id, status=dlq_status)
    elif off in t.cancelled:
        d.add(Outcome.CANCELLED, off, message=t.cancelled[off])
    elif t.pending(off):
        pending = t.retrying.get(off)
        d.add(Outcome.IN_QSTASH, off, message=pending[0] if pending else t.created_ids.get(off),
              qstash_state=pending[1] if pending else "CREATED")
    elif _kafka_only(d, off, route, kp, dead):
        pass
    elif t.sampled is not None and off not in t.sampled:
        d.add(Outcome.NOT_SAMPLED, off)
    elif off in kp.old:
        d.add(Outcome.UNPROVEN, off, why="older than QStash's log retention")
    elif off not in kp.present:
        d.add(Outcome.SKIPPED, off, why="not in Kafka (compacted or deleted)")
    else:
        d.add(Outcome.GAP, off)


def _risks(report: Verification, d: DestinationReport, t: Tally) -> None:
    """Duplicate risk, checked first: offsets delivered by an earlier hand-off or by two
    messages (beyond the dedup window, or under distinct dedup ids)."""
    where = f" ({d.destination})" if d.destination.startswith("url-group") else ""
    for off, n in sorted(t.earlier.items()):
        report.duplicate_risk.append({"topic": d.topic, "partition": d.partition, "offset": off,
                                      "why": f"delivered {n}x by an earlier hand-off{where}"})
    for off, found in sorted(t.duplicates.items()):
        spread = max(found.values()) - min(found.values())
        report.duplicate_risk.append({
            "topic": d.topic, "partition": d.partition, "offset": off,
            "why": f"{len(found)} QStash messages for one record, published "
                   f"{spread / 1000:.0f}s apart" + (
                       " (beyond the 10-minute dedup window)"
                       if spread > DEDUP_WINDOW_S * 1000 else " (distinct dedup ids)") + where,
            "messages": sorted(found)})
