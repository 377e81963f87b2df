"""Text forms of a :class:`~migrator.cutover.verify.Verification`: table, JSON, markdown."""

from __future__ import annotations

import json
from typing import Any

from migrator.cutover.verify_model import Outcome, Verification

__all__ = ["render"]

_SHOWN = 20  # problem offsets listed per kind and partition in table/markdown (JSON has all)


def _span(item: dict[str, Any]) -> str:
    """``7`` or ``7-9`` (an item covering a run of offsets)."""
    last = item.get("through", item["offset"])
    return str(item["offset"]) if last == item["offset"] else f"{item['offset']}-{last}"


def _ranges(items: list[dict[str, Any]]) -> str:
    """``3, 7-9, 12``."""
    return ", ".join(_span(i) for i in sorted(items, key=lambda i: int(i["offset"])))


def _detail(kind: str, item: dict[str, Any]) -> str:
    extra = {k: v for k, v in item.items() if k not in ("offset", "through") and v is not None}
    if not extra:
        return _span(item)
    return f"{_span(item)} (" + ", ".join(f"{k}={v}" for k, v in extra.items()) + ")"


def _problem_lines(items: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = []
    for kind, found in sorted(items.items()):
        if kind in (Outcome.GAP.value, Outcome.NOT_SAMPLED.value, Outcome.UNPROVEN.value):
            text = _ranges(found)
        else:
            shown = [_detail(kind, i) for i in found[:_SHOWN]]
            more = len(found) - _SHOWN
            text = "; ".join(shown) + (f"; ... {more} more (see --format json)" if more > 0 else "")
        n = sum(int(i.get("through", i["offset"])) - int(i["offset"]) + 1 for i in found)
        lines.append(f"{kind.replace('_', ' ')} [{n}]: {text}")
    return lines


def render(report: Verification, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.to_json(), indent=2)
    md = fmt == "markdown"
    data = report.to_json()
    out: list[str] = []
    title = f"cutover verify {report.group}: {report.verdict.upper()}"
    out.append(f"# {title}" if md else title)
    out.append("")
    out.append(f"state {report.state}, hand-off {report.handoff_at} (#{report.switches}), "
               f"since {report.since}, deep {'yes' if report.deep else 'no'}; "
               f"{data['kafka_records_read']} Kafka records, "
               f"{data['qstash_log_pages']} QStash log pages read")
    out.append(report.summary())
    out.append("")
    cols = ["topic", "partition", "destination", "range", "delivered", "in qstash", "failed",
            "cancelled", "dead-lettered", "skipped", "gap", "duplicate", "body", "unproven",
            "not sampled"]
    keys = [Outcome.DELIVERED, Outcome.IN_QSTASH, Outcome.FAILED, Outcome.CANCELLED,
            Outcome.DEAD_LETTERED, Outcome.SKIPPED, Outcome.GAP, Outcome.DUPLICATE,
            Outcome.BODY_MISMATCH, Outcome.UNPROVEN, Outcome.NOT_SAMPLED]
    rows = [[d["topic"], str(d["partition"]), d["destination"], f"{d['start']}..{d['end']}",
             *[str(d["counts"][k.value]) for k in keys]] for d in data["destinations"]]
    if md:
        out.append("| " + " | ".join(cols) + " |")
        out.append("|" + "---|" * len(cols))
        out += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        widths = [max(len(x) for x in col) for col in zip(cols, *rows, strict=True)]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                for r in [cols, *rows]]
    for d in data["destinations"]:
        lines = _problem_lines(d["problems"])
        if lines:
            out.append("")
            head = f"{d['topic']}[{d['partition']}] -> {d['destination']}:"
            out.append(f"## {head}" if md else head)
            out += [("- " if md else "  ") + line for line in lines]
    if report.duplicate_risk:
        out.append("")
        out.append("## Duplicate risk" if md else "duplicate risk (checked first):")
        for r in report.duplicate_risk:
            out.append(("- " if md else "  ") + f"{r['topic']}[{r['partition']}]@{r['offset']}: "
                       f"{r['why']}")
    if report.sample:
        out.append("")
        out.append("## Sample" if md else "sample:")
        out += [("- " if md else "  ") + f"{k}: {v}" for k, v in report.sample.items()]
    if report.notes or report.qstash_error:
        out.append("")
        out.append("## Notes" if md else "notes:")
        if report.qstash_error:
            out.append(("- " if md else "  ") + f"QStash: {report.qstash_error}")
        out += [("- " if md else "  ") + n for n in report.notes]
    return "\n".join(out)
