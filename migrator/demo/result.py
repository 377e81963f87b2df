"""What each stage of the demo did, and the summary table the CLI prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DemoResult", "summary"]


@dataclass
class DemoResult:
    """What each stage did. Units: a *record* is one Kafka record; the bridge sends one *message*
    per record and destination (a QStash publish); QStash makes one *delivery* per endpoint of
    a message (a URL-group message: one per endpoint of the group)."""

    workdir: Path
    expected: dict[str, int] = field(default_factory=dict)  # endpoint path -> records
    received: dict[str, int] = field(default_factory=dict)  # endpoint path -> distinct records
    deliveries: int = 0  # HTTP requests the endpoints received
    bad_signatures: int = 0
    second_apply: str = ""
    backlog: int = -1  # what `migrator bridge check` said the bridge would deliver
    routed_records: int = 0  # the records of the routed topics (each once)
    records_read: int = -1  # from the bridge's stop summary
    messages_sent: int = -1
    audit: str = ""  # one line per stage, as the commands reported
    plan: str = ""
    apply: str = ""

    # per group: (old consumer's records, endpoint's records, missing, duplicated) over every
    # offset from the group's position before the demo to the end
    groups: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(ok for _stage, ok, _line in self.stages())

    def stages(self) -> list[tuple[str, bool, str]]:
        """(stage, passed, one line with its counts and units)."""
        deliveries = sum(self.expected.values())
        again = next((line for line in self.second_apply.splitlines()
                      if line.startswith("Nothing to do")), self.second_apply or "(no output)")
        return [
            ("audit", bool(self.audit), self.audit or "no inventory"),
            ("plan", bool(self.plan), self.plan or "no plan"),
            ("apply", again.startswith("Nothing to do"), f"{self.apply} Again: {again}"),
            ("bridge check", self.backlog == self.routed_records,
             f"backlog {self.backlog:,} records; the routed topics hold {self.routed_records:,}"),
            ("bridge", self.records_read >= 0 and self.messages_sent >= 0,
             f"{self.records_read:,} records read from the hand-off offsets on; "
             f"{self.messages_sent:,} messages sent (one per record and destination)"),
            *(("cutover " + group, bool(self.groups) and not missing and not dupes,
               f"old consumer {old:,} records + endpoint {new:,} records: "
               + ("every record exactly once" if not missing and not dupes
                  else f"{missing:,} missing, {dupes:,} twice"))
              for group, (old, new, missing, dupes) in sorted(self.groups.items())),
            ("cutover", bool(self.groups), f"{len(self.groups)} consumer groups handed over"),
            ("delivery", self.expected == self.received and self.deliveries == deliveries
             and self.bad_signatures == 0,
             f"{self.deliveries:,} deliveries of {deliveries:,} (QStash delivers a URL-group "
             "message to each endpoint of the group); every endpoint got each of its records "
             f"{'once' if self.expected == self.received else 'NOT once'}; "
             f"{self.bad_signatures} bad signatures"),
        ]


def summary(result: DemoResult) -> str:
    """The per-endpoint table (records), then one line per stage, then the verdict."""
    width = max([len("endpoint"), *map(len, result.expected)])
    lines = [f"{'endpoint':<{width}}  {'records expected':>16}  {'records received':>16}"]
    for path, n in sorted(result.expected.items()):
        lines.append(f"{path:<{width}}  {n:>16,}  {result.received.get(path, 0):>16,}")
    lines.append("")
    stages = result.stages()
    name_width = max(len(stage) for stage, _, _ in stages)
    for stage, ok, line in stages:
        lines.append(f"{stage:<{name_width}}  {'ok    ' if ok else 'FAILED'}  {line}")
    lines.append("")
    lines.append("Demo passed: every record reached each endpoint of its consumer groups once, signed."
                 if result.ok else "Demo FAILED: see the stages marked FAILED above.")
    return "\n".join(lines)
