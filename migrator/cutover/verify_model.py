"""What `cutover verify` found: outcomes per destination and partition, and the whole report
(:meth:`Verification.to_json` is the documented, versioned form; docs/verify.md)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "BAD",
    "DEDUP_WINDOW_S",
    "REPORT_VERSION",
    "DestinationReport",
    "Outcome",
    "Verification",
]

# 2: a run of offsets with the same detail is one problem item {"offset", "through", ...}
REPORT_VERSION = 2
DEDUP_WINDOW_S = 600  # QStash keeps deduplication ids for 10 minutes (its docs)
Partition = tuple[str, int]

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
class DestinationReport:
    """Outcomes of one destination's offsets on one partition."""

    topic: str
    partition: int
    destination: str
    kind: str
    start: int
    end: int
    counts: Counter[str] = field(default_factory=Counter)
    # problem offsets with what was found: {"offset", detail...}; a run of consecutive
    # offsets with the same detail is one item with "through" (its last offset), so the
    # listing grows with the problems' runs, not with the records
    problems: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, outcome: Outcome, offset: int, **detail: Any) -> None:
        self.counts[outcome.value] += 1
        if outcome in (Outcome.DELIVERED, Outcome.SKIPPED, Outcome.NOT_SAMPLED):
            return
        items = self.problems[outcome.value]
        if items:
            last = items[-1]
            if last.get("through", last["offset"]) + 1 == offset and all(
                    last.get(k) == v for k, v in detail.items()) \
                    and len(last) - ("through" in last) == len(detail) + 1:
                last["through"] = offset
                return
        items.append({"offset": offset, **detail})

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
