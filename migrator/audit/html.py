"""The HTML report: one self-contained file (inline CSS, inline SVG charts, no script, no fonts
or images fetched at view time). Every value is HTML-escaped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from html import escape

from migrator.audit.findings import CATALOG
from migrator.inventory import Finding, Inventory
from migrator.qstash_tiers import TIERS
from migrator.volume import estimate_volume

__all__ = ["bar_chart", "render_html"]

_SEV_COLOR = {"blocker": "#d64545", "warning": "#e49b0f", "info": "#3a7bd5"}

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1d2433;background:#f4f6fa}
header{background:linear-gradient(120deg,#1b2a4a,#2f4b7c);color:#fff;padding:28px 40px 24px}
header h1{margin:0 0 4px;font-size:24px;font-weight:650;letter-spacing:.2px}
header .meta{opacity:.8;font-size:13px}
.pill{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600;
 background:rgba(255,255,255,.18);margin-left:6px}
main{max-width:1180px;margin:0 auto;padding:24px 32px 60px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:14px;margin:-46px 0 22px}
.card{background:#fff;border-radius:12px;padding:14px 16px;box-shadow:0 1px 3px rgba(20,30,60,.12)}
.card .k{font-size:12px;color:#6b7488;text-transform:uppercase;letter-spacing:.6px}
.card .v{font-size:26px;font-weight:650;margin-top:2px}
.card .s{font-size:12px;color:#6b7488}
section{background:#fff;border-radius:12px;padding:18px 22px;margin:0 0 20px;
 box-shadow:0 1px 3px rgba(20,30,60,.10)}
h2{font-size:17px;margin:0 0 12px;font-weight:650}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:20px}
@media(max-width:900px){.grid2{grid-template-columns:1fr}}
.finding{display:flex;gap:12px;padding:10px 0;border-top:1px solid #eef0f5}
.finding:first-of-type{border-top:0}
.sev{flex:0 0 74px;text-align:center;color:#fff;border-radius:6px;font-size:11px;font-weight:700;
 text-transform:uppercase;padding:3px 0;height:22px;letter-spacing:.5px}
.finding .code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-weight:650;font-size:13px}
.finding .obj{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;color:#4a5470;font-size:12px;
 background:#f0f2f7;border-radius:4px;padding:0 5px;margin-right:6px}
.finding .body{flex:1}
.finding .count{color:#6b7488;font-weight:600;font-size:12px}
.finding .title{font-weight:600}
.finding ul{margin:4px 0 6px;padding-left:0;list-style:none}
.finding li{margin:2px 0;font-size:13px}
.finding .fix{color:#4a5470;font-size:13px}
.finding .fix b{color:#1d2433}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;color:#6b7488;font-weight:600;font-size:12px;text-transform:uppercase;
 letter-spacing:.4px;border-bottom:2px solid #e3e7ef;padding:6px 8px}
td{border-bottom:1px solid #eef0f5;padding:6px 8px;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr:hover td{background:#f8f9fc}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.muted{color:#8a93a6}
.tag{display:inline-block;font-size:11px;border-radius:4px;padding:0 6px;background:#eef1f7;
 color:#4a5470;margin-right:4px}
.banner{background:#fff4e5;border-left:4px solid #e49b0f;padding:8px 12px;border-radius:6px;
 margin-bottom:10px}
.ok{color:#2e8b57;font-weight:600}
footer{color:#8a93a6;font-size:12px;text-align:center;margin-top:30px}
"""


def _fmt(n: float) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return f"{n:.1f}" if n and n < 10 and n != int(n) else f"{int(n):,}"


def bar_chart(rows: Sequence[tuple[str, float]], *, color: str, unit: str, limit: int = 20) -> str:
    """A horizontal bar chart as inline SVG: largest first, at most ``limit`` bars, zeros folded
    into a note when anything is non-zero."""
    ordered = sorted(rows, key=lambda r: (-r[1], r[0]))
    nonzero = [r for r in ordered if r[1] > 0]
    shown = (nonzero or ordered)[:limit]
    hidden = len(ordered) - len(shown)
    note = (f'<p class="muted" style="margin:6px 0 0">+ {hidden} more '
            f'({"all at 0" if len(nonzero) <= limit else "smaller"}).</p>'
            if hidden else "")
    rows = shown
    if not rows:
        return '<p class="muted">Nothing to chart.</p>'
    label_w, bar_w, row_h, value_w = 210, 300, 24, 70
    width = label_w + bar_w + value_w
    height = row_h * len(rows) + 8
    peak = max(v for _, v in rows) or 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="100%" role="img" style="max-width:{width}px">']
    for i, (label, value) in enumerate(rows):
        y = i * row_h + 4
        w = max(2.0, bar_w * value / peak) if value > 0 else 0
        short = label if len(label) <= 30 else label[:29] + "…"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" font-size="12" '
            f'fill="#1d2433"><title>{escape(label)}</title>{escape(short)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="{row_h - 8}" rx="4" '
            f'fill="#eef1f7"/>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" rx="4" '
            f'fill="{color}"/>'
            f'<text x="{label_w + bar_w + 8}" y="{y + 15}" font-size="12" fill="#4a5470">'
            f'{escape(_fmt(value))}{escape(unit)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts) + note


def _card(key: str, value: str, sub: str = "", color: str | None = None) -> str:
    style = f' style="color:{color}"' if color else ""
    return (f'<div class="card"><div class="k">{escape(key)}</div>'
            f'<div class="v"{style}>{escape(value)}</div><div class="s">{escape(sub)}</div></div>')


def _finding_group(code: str, items: Sequence[Finding]) -> str:
    """All findings of one code: the severity, title and remedy once, then one line per object."""
    severity = items[0].severity
    title = CATALOG[code].title if code in CATALOG else ""
    # One remedy for the code, or one per object when they differ (e.g. the ACL to grant).
    shared = len({f.remedy for f in items}) == 1
    rows = "".join(
        f'<li><span class="obj">{escape(f.object)}</span> {escape(f.message)}'
        + ("" if shared else f'<div class="fix"><b>Remedy:</b> {escape(f.remedy)}</div>')
        + "</li>"
        for f in items
    )
    common = f'<div class="fix"><b>Remedy:</b> {escape(items[0].remedy)}</div>' if shared else ""

    return (
        f'<div class="finding"><div class="sev" style="background:{_SEV_COLOR[severity]}">'
        f'{escape(severity)}</div><div class="body"><div><span class="code">{escape(code)}</span>'
        f' <span class="count">&times;{len(items)}</span> <span class="title">{escape(title)}</span></div>'
        f'<ul>{rows}</ul>{common}</div></div>'
    )


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int] | None = None,
           raw: set[int] | None = None) -> str:
    numeric = numeric or set()
    raw = raw or set()
    th = "".join(f'<th class="n">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
                 for i, h in enumerate(head))
    body = []
    for row in rows:
        tds = []
        for i, cell in enumerate(row):
            text = cell if i in raw else escape(cell)
            tds.append(f'<td class="n">{text}</td>' if i in numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} B"


def _unavailable(status_error: str | None) -> str:
    return f'<div class="banner"><b>Unavailable.</b> {escape(status_error or "unknown error")} — ' \
           "this section is incomplete; see SOURCE_UNAVAILABLE.</div>"


def render_html(inv: Inventory) -> str:
    sev = Counter(f.severity for f in inv.findings)
    tier = TIERS[inv.qstash_plan]
    volume = estimate_volume(inv)
    daily = volume.messages_per_day
    partitions = sum(len(t.partitions) for t in inv.topics)
    total_lag = sum(g.total_lag for g in inv.consumer_groups)
    user_topics = [t for t in inv.topics if not t.internal]

    cards = "".join([
        _card("Blockers", str(sev["blocker"]), "must change before moving",
              _SEV_COLOR["blocker"] if sev["blocker"] else None),
        _card("Warnings", str(sev["warning"]), "need a design decision",
              _SEV_COLOR["warning"] if sev["warning"] else None),
        _card("Info", str(sev["info"]), "worth knowing"),
        _card("Topics", f"{len(inv.topics):,}", f"{partitions:,} partitions"),
        _card("Consumer groups", f"{len(inv.consumer_groups):,}", f"total lag {total_lag:,}"),
        _card("Messages / day", f"{daily:,}",
              "no quota on this plan" if tier.messages_per_day is None
              else f"quota {tier.messages_per_day:,}",
              _SEV_COLOR["blocker"] if tier.messages_per_day and daily > tier.messages_per_day
              else None),
    ])

    measured = any((t.records_per_second or 0) > 0 for t in user_topics)
    if measured:
        tp_rows = [(t.name, t.records_per_second or 0.0) for t in user_topics]
        tp_title, tp_unit = "Throughput per topic", "/s"
    else:
        tp_rows = [(t.name, float(t.records_last_24h or 0)) for t in user_topics]
        why = ("no writes while sampling"
               if any(t.records_per_second is not None for t in user_topics)
               else "throughput not sampled")
        tp_title, tp_unit = f"Records in the last 24 h per topic ({why})", ""
    lag_rows = [(g.group_id, float(g.total_lag)) for g in inv.consumer_groups]

    if inv.findings:
        by_code: dict[str, list[Finding]] = {}
        for f in inv.findings:
            by_code.setdefault(f.code, []).append(f)
        findings_html = "".join(_finding_group(code, items) for code, items in by_code.items())
    else:
        findings_html = '<p class="ok">No findings: everything maps onto QStash as it is.</p>'

    topic_rows = []
    for t in inv.topics:
        s = t.sample
        tags = []
        if t.internal:
            tags.append('<span class="tag">internal</span>')
        policy = t.config("cleanup.policy") or "-"
        topic_rows.append([
            f'<span class="mono">{escape(t.name)}</span> {"".join(tags)}',
            str(len(t.partitions)), str(t.replication_factor), f"{t.total_records:,}",
            "-" if t.records_per_second is None else f"{t.records_per_second:,.1f}",
            escape(policy),
            _size(s.size_p95) if s and s.sampled else "-",
            _size(s.size_max) if s and s.sampled else "-",
            f"{s.keyed_ratio:.0%}" if s and s.sampled else "-",
            escape(s.value_format) if s and s.sampled else "-",
        ])
    group_rows = [
        [f'<span class="mono">{escape(g.group_id)}</span>', escape(g.state), str(len(g.members)),
         escape(", ".join(g.topics) or "-"), f"{g.total_lag:,}"]
        for g in inv.consumer_groups
    ]

    reg = inv.schema_registry
    if reg.url is None:
        registry_html = '<p class="muted">Not configured (--schema-registry-url).</p>'
    else:
        registry_html = "" if reg.status.available else _unavailable(reg.status.error)
        if reg.subjects:
            registry_html += _table(
                ["subject", "type", "versions", "latest id", "compatibility", "references", "topic"],
                [[escape(s.subject), escape(s.schema_type), escape(", ".join(map(str, s.versions))),
                  str(s.latest_id), escape(s.compatibility or reg.global_compatibility or "-"),
                  escape(", ".join(r.subject for r in s.references) or "-"), escape(s.topic or "-")]
                 for s in reg.subjects], numeric={3}, raw={0, 1, 2, 4, 5, 6})
        elif reg.status.available:
            registry_html += '<p class="muted">No subjects.</p>'
    con = inv.connect
    if con.url is None:
        connect_html = '<p class="muted">Not configured (--connect-url).</p>'
    else:
        connect_html = "" if con.status.available else _unavailable(con.status.error)
        if con.connectors:
            connect_html += _table(
                ["connector", "kind", "class", "state", "tasks", "topics"],
                [[escape(c.name), escape(c.kind), escape(c.connector_class.rsplit(".", 1)[-1]),
                  escape(c.state), escape(", ".join(c.task_states) or "-"),
                  escape(", ".join(c.topics) or "-")] for c in con.connectors],
                raw={0, 1, 2, 3, 4, 5})
        elif con.status.available:
            connect_html += '<p class="muted">No connectors.</p>'

    brokers = ", ".join(f"{b.id}@{b.host}:{b.port}" for b in inv.cluster.brokers)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kafka → QStash audit · {escape(inv.cluster.cluster_id or "")}</title>
<style>{_CSS}</style></head>
<body>
<header><h1>Kafka → QStash audit</h1>
<div class="meta">cluster <b>{escape(inv.cluster.cluster_id or "?")}</b> · brokers {escape(brokers)}
 · controller {escape(str(inv.cluster.controller_id))} · {escape(inv.generated_at)}
 <span class="pill">QStash plan: {escape(tier.name)} · {tier.max_message_bytes // (1024 * 1024)} MiB
 messages</span></div></header>
<main>
<div class="cards">{cards}</div>
<p class="muted">Messages / day: {escape(volume.explanation)}.</p>
<div class="grid2">
<section><h2>{escape(tp_title)}</h2>{bar_chart(tp_rows, color="#3a7bd5", unit=tp_unit)}</section>
<section><h2>Lag per consumer group</h2>{bar_chart(lag_rows, color="#e4730f", unit="")}</section>
</div>
<section><h2>Findings</h2>{findings_html}</section>
<section><h2>Topics</h2>{_table(
    ["topic", "partitions", "rf", "records", "records/s", "cleanup", "p95 size", "max size",
     "keyed", "format"], topic_rows, numeric={1, 2, 3, 4}, raw=set(range(10)))}</section>
<section><h2>Consumer groups</h2>{_table(["group", "state", "members", "topics", "lag"], group_rows,
    numeric={2, 4}, raw=set(range(5))) if group_rows else '<p class="muted">None.</p>'}</section>
<section><h2>Schema Registry</h2>{registry_html}</section>
<section><h2>Kafka Connect</h2>{connect_html}</section>
<footer>migrator {escape(inv.tool_version)} · inventory schema {escape(inv.schema_version)}
 · generated {escape(inv.generated_at)}</footer>
</main></body></html>
"""
