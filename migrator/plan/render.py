"""The plan for review, as Markdown or self-contained HTML (the runbook embeds the same text).

Both formats render one block list built by :func:`review_blocks`, so they never disagree.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from migrator.plan.spec import Plan, RouteSpec, is_placeholder

__all__ = [
    "Block",
    "Format",
    "Heading",
    "Items",
    "Para",
    "Table",
    "render",
    "review_blocks",
    "to_html",
    "to_markdown",
]

Format = Literal["markdown", "html"]


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Items:
    items: tuple[str, ...]


Block = Heading | Para | Table | Items


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}" if value % 1 else f"{value:,.0f}"


def _targets(route: RouteSpec) -> str:
    parts = []
    for t in route.targets:
        url = "**unmapped**" if is_placeholder(t.endpoint) else t.endpoint
        parts.append(f"{t.group} -> {url}" + (" (workflow)" if t.workflow else ""))
    return "; ".join(parts) or "-"


def review_blocks(plan: Plan) -> list[Block]:
    """The plan as a list of blocks: summary, routes, delivery, resources, blockers, cost."""
    counts = Counter(r.pattern for r in plan.routes)
    summary = ", ".join(f"{n} {p}" for p, n in sorted(counts.items()))
    blocks: list[Block] = [
        Heading(1, "QStash migration plan"),
        Para(f"Cluster {plan.source.cluster_id or '?'} ({plan.source.bootstrap_servers}), "
             f"inventory of {plan.source.inventory_generated_at or '?'}; QStash plan "
             f"**{plan.qstash_plan}**; generated {plan.generated_at} by migrator "
             f"{plan.tool_version}."),
        Para(f"{len(plan.routes)} topics: {summary or 'none'}. "
             f"{sum(1 for b in plan.blockers if b.severity == 'blocker')} blocker(s), "
             f"{len(plan.placeholders())} unfilled placeholder(s)."),
        Heading(2, "Routes"),
        Table(("Topic", "Pattern", "Why", "Consumer groups -> endpoints"),
              tuple((r.topic, r.pattern, r.reason, _targets(r)) for r in plan.routes)),
    ]
    routed = [r for r in plan.routes if r.targets]
    if routed:
        blocks += [Heading(2, "Delivery settings"), Table(
            ("Topic", "Ordering", "Retries", "Retry delay", "Dead letters", "Failure callback",
             "Rate/s", "Parallelism", "Payload", "Retry settings from"),
            tuple((r.topic, _ordering(r, plan.prefix), str(r.retries), r.retry_delay or "QStash default",
                   r.dead_letter, r.failure_callback or "-", _num(r.rate),
                   _num(r.parallelism), "decoded to JSON" if r.decode == "decode" else "bytes",
                   r.retry_reason) for r in routed))]
    blocks += _ordering_notes(plan)
    res = plan.resources
    blocks.append(Heading(2, "QStash resources"))
    blocks.append(Table(("Kind", "Name", "Settings"), tuple(
        [("queue", q.name, f"parallelism {q.parallelism}") for q in res.queues]
        + [("URL group", g.name, ", ".join(f"{e.name} -> {e.url}" for e in g.endpoints))
           for g in res.url_groups]
        + [("schedule", s.schedule_id, f"cron `{s.cron}` -> {s.destination}. {s.reason}")
           for s in res.schedules])) if (res.queues or res.url_groups or res.schedules)
        else Para("None: every route publishes directly."))
    blocks.append(Heading(2, "Blockers and warnings"))
    blocks.append(Table(("Severity", "Code", "Object", "What", "Remedy"), tuple(
        (b.severity, b.code, b.object, b.message, b.remedy) for b in plan.blockers))
        if plan.blockers else Para("None."))
    holes = plan.placeholders()
    blocks.append(Heading(2, "Unfilled placeholders"))
    blocks.append(Items(tuple(holes)) if holes else Para("None: every endpoint is mapped."))
    if plan.cost is not None:
        c = plan.cost
        blocks += [
            Heading(2, "Cost estimate"),
            Para(f"About **{c.messages_per_day:,.0f} messages/day** ({c.volume_basis}); "
                 f"{c.messages_with_retries_per_day:,.0f} with retries at {c.retry_rate:.1%}: "
                 f"**${c.monthly_usd:,.2f}/month** ({c.basis})."),
            Table(("Topic", "Records/s", "Records in topic", "Fan-out", "Messages/day", "USD/month"),
                  tuple((ln.topic, _num(ln.records_per_second), f"{ln.records_in_topic:,}",
                         str(ln.fan_out), f"{ln.messages_per_day:,.0f}", f"{ln.monthly_usd:,.2f}")
                        for ln in c.lines)),
        ]
    return blocks


def _ordering(route: RouteSpec, prefix: str) -> str:
    from migrator.plan.scaffold.bridge import flow_control_keys  # the keys bridge.yaml sends

    o = route.ordering
    if o is None:
        return "none (parallel)"
    parts = []
    if o.mode == "fifo_queue" and o.queues:
        parts.append(f"kept through retries: {o.queues} FIFO queue(s) per group ({o.queue}-N), "
                     f"parallelism 1, partition p -> queue p mod {o.queues}")
    if o.best_effort:
        keys = flow_control_keys(route, prefix) or [o.key or "-"]
        parts.append(f"best effort for {', '.join(o.best_effort)}: flow-control "
                     f"key{'s' if len(keys) > 1 else ''} {', '.join(f'`{k}`' for k in keys)}, "
                     f"parallelism {o.parallelism}; order can break on a retry")
    return "; ".join(parts)


def _ordering_notes(plan: Plan) -> list[Block]:
    """What the ordered routes promise, in words (also in the runbook)."""
    ordered = [r for r in plan.routes if r.ordering is not None]
    if not ordered:
        return []
    items = []
    fifo = [r.topic for r in ordered if r.ordering and r.ordering.mode == "fifo_queue"]
    if fifo:
        items.append(
            f"FIFO queues ({', '.join(fifo)}): every partition goes to exactly one queue with "
            "parallelism 1, so every record of a Kafka key goes to one queue and arrives in "
            "offset order, through retries (5xx, timeouts, Retry-After) and callbacks. A queue "
            "delivers one message per endpoint round trip: capacity is about queues / latency.")
        items.append(
            "A message that exhausts its retries goes to QStash's DLQ and its queue moves on: the "
            "key's later records arrive without it. Retrying it from the DLQ delivers it after "
            "them (it goes to the back); repair the key's state at the endpoint before, or "
            "replay the key's later records after it.")
    best = [f"{r.topic} ({', '.join(r.ordering.best_effort)})" for r in ordered
            if r.ordering and r.ordering.best_effort]
    if best:
        items.append(
            f"Best effort ({'; '.join(best)}): a flow-control key with parallelism 1. Order can "
            "break on a retry: QStash frees the key's slot when an attempt fails, so a refused "
            "record arrives after the key's later records.")
    return [Heading(2, "Ordering"), Items(tuple(items))]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        match block:
            case Heading(level=level, text=text):
                out.append(f"{'#' * level} {text}\n")
            case Para(text=text):
                out.append(text + "\n")
            case Table(header=header, rows=rows):
                out.append("| " + " | ".join(header) + " |")
                out.append("|" + "---|" * len(header))
                out.extend("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows)
                out.append("")
            case Items(items=items):
                out.extend(f"- {cell_text}" for cell_text in items)
                out.append("")
    return "\n".join(out)


def _inline(text: str) -> str:
    escaped = html.escape(text)
    parts = escaped.split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list[Block], title: str = "QStash migration plan") -> str:
    body: list[str] = []
    for block in blocks:
        match block:
            case Heading(level=level, text=text):
                body.append(f"<h{level}>{html.escape(text)}</h{level}>")
            case Para(text=text):
                body.append(f"<p>{_inline(text)}</p>")
            case Table(header=header, rows=rows):
                head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
                trs = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                              for row in rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            case Items(items=items):
                body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
    style = ("body{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem}"
             "table{border-collapse:collapse;margin:1rem 0}"
             "td,th{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top;text-align:left}"
             "th{background:#f4f4f4}")
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{style}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def render(plan: Plan, fmt: Format = "markdown") -> str:
    """The plan review in ``fmt``."""
    blocks = review_blocks(plan)
    return to_markdown(blocks) if fmt == "markdown" else to_html(blocks)
