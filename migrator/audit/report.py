"""Render an inventory: table (terminal), JSON (the snapshot `migrator plan` reads), Markdown,
HTML (see :mod:`migrator.audit.html`). Renderers return text; the CLI writes it.

Every renderer works from the Inventory only, which holds no secret (SecretStr never enters it,
connector configs are redacted when read), so no format can leak one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from migrator.inventory import Inventory, TopicInfo
from migrator.qstash_tiers import TIERS
from migrator.volume import estimate_volume

__all__ = ["FORMATS", "render", "render_json", "render_markdown", "render_table"]


def _fmt_int(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)


def _fmt_rate(r: float | None) -> str:
    return "-" if r is None else f"{r:,.1f}/s"


def _retention(t: TopicInfo) -> str:
    ms = t.config("retention.ms")
    if ms is None:
        return "-"
    value = int(ms)
    if value < 0:
        return "forever"
    hours = value / 3_600_000
    return f"{hours / 24:g}d" if hours >= 24 else f"{hours:g}h"


def _topic_rows(inv: Inventory) -> list[list[str]]:
    rows = []
    for t in inv.topics:
        s = t.sample
        rows.append([
            t.name + (" (internal)" if t.internal else ""),
            str(len(t.partitions)),
            str(t.replication_factor),
            _fmt_int(t.total_records),
            _fmt_rate(t.records_per_second),
            _fmt_int(t.records_last_24h),
            t.config("cleanup.policy") or "-",
            _retention(t),
            _fmt_bytes(s.size_p95) if s and s.sampled else "-",
            _fmt_bytes(s.size_max) if s and s.sampled else "-",
            f"{s.keyed_ratio:.0%}" if s and s.sampled else "-",
            (s.value_format if s and s.sampled else "-"),
        ])
    return rows


_TOPIC_HEAD = ["topic", "parts", "rf", "records", "rate", "last 24h", "cleanup", "retention",
               "p95 size", "max size", "keyed", "format"]


def _group_rows(inv: Inventory) -> list[list[str]]:
    return [
        [g.group_id, g.state, g.type, str(len(g.members)), ", ".join(g.topics) or "-",
         _fmt_int(g.total_lag)]
        for g in inv.consumer_groups
    ]


_GROUP_HEAD = ["group", "state", "type", "members", "topics", "lag"]


def _summary(inv: Inventory) -> list[tuple[str, str]]:
    sev = Counter(f.severity for f in inv.findings)
    tier = TIERS[inv.qstash_plan]
    volume = estimate_volume(inv)
    return [
        ("cluster", f"{inv.cluster.cluster_id or '?'} ({len(inv.cluster.brokers)} broker(s), "
                    f"controller {inv.cluster.controller_id})"),
        ("topics", f"{len(inv.topics)} ({sum(len(t.partitions) for t in inv.topics):,} partitions)"),
        ("consumer groups", str(len(inv.consumer_groups))),
        ("schema registry", _section(inv.schema_registry.url, inv.schema_registry.status.available,
                                     inv.schema_registry.status.error,
                                     f"{len(inv.schema_registry.subjects)} subjects")),
        ("connect", _section(inv.connect.url, inv.connect.status.available,
                             inv.connect.status.error, f"{len(inv.connect.connectors)} connectors")),
        ("qstash plan", f"{tier.name}: messages up to {tier.max_message_bytes // (1024 * 1024)} MiB, "
                        + ("no daily quota" if tier.messages_per_day is None
                           else f"{tier.messages_per_day:,} messages/day")),
        ("projected messages/day", f"{volume.messages_per_day:,}"),
        ("messages/day basis", volume.explanation),
        ("findings", f"{sev['blocker']} blocker, {sev['warning']} warning, {sev['info']} info"),
    ]


def _section(url: str | None, available: bool, error: str | None, ok: str) -> str:
    if url is None:
        return "not configured"
    return ok if available else f"UNAVAILABLE ({error})"


# -- table ------------------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 48) -> str:
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row]
             for row in [list(head), *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("─" * w for w in widths))
    return "\n".join(lines)


def render_table(inv: Inventory) -> str:
    out = ["Kafka → QStash audit", ""]
    width = max(len(k) for k, _ in _summary(inv))
    out += [f"  {k.ljust(width)}  {v}" for k, v in _summary(inv)]
    out += ["", "Findings", ""]
    if inv.findings:
        out.append(_table(["severity", "code", "object", "message"],
                          [[f.severity.upper(), f.code, f.object, f.message] for f in inv.findings],
                          max_width=90))
    else:
        out.append("  none")
    out += ["", "Topics", "", _table(_TOPIC_HEAD, _topic_rows(inv))]
    out += ["", "Consumer groups", ""]
    out.append(_table(_GROUP_HEAD, _group_rows(inv)) if inv.consumer_groups else "  none")
    if inv.schema_registry.url:
        out += ["", "Schema Registry", ""]
        if inv.schema_registry.subjects:
            out.append(_table(
                ["subject", "type", "versions", "id", "compat", "refs", "topic"],
                [[s.subject, s.schema_type, str(len(s.versions)), str(s.latest_id),
                  s.compatibility or inv.schema_registry.global_compatibility or "-",
                  ", ".join(r.subject for r in s.references) or "-", s.topic or "-"]
                 for s in inv.schema_registry.subjects]))
        else:
            state = _section(inv.schema_registry.url, inv.schema_registry.status.available,
                             inv.schema_registry.status.error, "no subjects")
            out.append(f"  {state}")
    if inv.connect.url:
        out += ["", "Kafka Connect", ""]
        if inv.connect.connectors:
            out.append(_table(
                ["connector", "kind", "class", "state", "tasks", "topics"],
                [[c.name, c.kind, c.connector_class.rsplit(".", 1)[-1], c.state,
                  ",".join(c.task_states) or "-", ", ".join(c.topics) or "-"]
                 for c in inv.connect.connectors]))
        else:
            state = _section(inv.connect.url, inv.connect.status.available,
                             inv.connect.status.error, "no connectors")
            out.append(f"  {state}")
    remedies: dict[str, dict[str, str]] = {}  # code -> object -> remedy
    for f in inv.findings:
        remedies.setdefault(f.code, {})[f.object] = f.remedy
    if remedies:
        out += ["", "Remedies", ""]
        for code, by_object in sorted(remedies.items()):
            if len(set(by_object.values())) == 1:
                out.append(f"  {code}: {next(iter(by_object.values()))}")
            else:  # remedies naming the object (e.g. the ACL to grant): one line each
                out += [f"  {code} ({obj}): {remedy}" for obj, remedy in by_object.items()]
    return "\n".join(out) + "\n"


# -- json -------------------------------------------------------------------------------------


def render_json(inv: Inventory) -> str:
    return inv.model_dump_json(indent=2) + "\n"


# -- markdown ---------------------------------------------------------------------------------


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(inv: Inventory) -> str:
    out = [f"# Kafka → QStash audit ({inv.generated_at})", ""]
    out.append(_md_table(["", ""], [[f"**{k}**", v] for k, v in _summary(inv)]))
    out += ["", "## Findings", ""]
    if inv.findings:
        out.append(_md_table(["severity", "code", "object", "message", "remedy"],
                             [[f.severity, f"`{f.code}`", f"`{f.object}`", f.message, f.remedy]
                              for f in inv.findings]))
    else:
        out.append("No findings.")
    out += ["", "## Topics", "", _md_table(_TOPIC_HEAD, _topic_rows(inv))]
    out += ["", "## Consumer groups", ""]
    out.append(_md_table(_GROUP_HEAD, _group_rows(inv)) if inv.consumer_groups else "None.")
    if inv.schema_registry.url:
        out += ["", "## Schema Registry", ""]
        if not inv.schema_registry.status.available:
            out += [f"> **Unavailable:** {inv.schema_registry.status.error}", ""]
        if inv.schema_registry.subjects:
            out.append(_md_table(
                ["subject", "type", "versions", "latest id", "compatibility", "references", "topic"],
                [[s.subject, s.schema_type, ", ".join(map(str, s.versions)), str(s.latest_id),
                  s.compatibility or inv.schema_registry.global_compatibility or "-",
                  ", ".join(f"{r.name} → {r.subject} v{r.version}" for r in s.references) or "-",
                  s.topic or "-"] for s in inv.schema_registry.subjects]))
    if inv.connect.url:
        out += ["", "## Kafka Connect", ""]
        if not inv.connect.status.available:
            out += [f"> **Unavailable:** {inv.connect.status.error}", ""]
        if inv.connect.connectors:
            out.append(_md_table(
                ["connector", "kind", "class", "state", "tasks", "topics"],
                [[c.name, c.kind, c.connector_class, c.state, ", ".join(c.task_states) or "-",
                  ", ".join(c.topics) or "-"] for c in inv.connect.connectors]))
    return "\n".join(out) + "\n"


def _html(inv: Inventory) -> str:
    from migrator.audit.html import render_html

    return render_html(inv)


FORMATS: dict[str, Callable[[Inventory], str]] = {
    "table": render_table,
    "json": render_json,
    "markdown": render_markdown,
    "html": _html,
}


def render(inv: Inventory, fmt: str) -> str:
    return FORMATS[fmt](inv)
