"""Publish templates: what a batch item's headers say, read once per distinct set of headers.

A client sending many items (the bridge: 500 per ``/v2/batch`` request) repeats the same
configuration headers on every item; only the forwarded headers and the deduplication id
change. ``HeaderPlan`` says, once per tuple of header names, which header is which;
``Template`` is the parsed configuration of one set of configuration header values (every
header but the forwarded ones and the deduplication id), with the stored-record fields it
implies. Both are pure functions of their keys, so caching them changes no answer: the
broker's fast path (accept-only batches) uses them and falls back to the full
``parse_publish_config`` path for anything they do not cover.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrator.qstash_plans import PlanLimits
from migrator.qstash_server.messages import (
    NEVER_FORWARD,
    Message,
    canonical_header,
    parse_publish_config,
)
from migrator.qstash_server.timing import BadValue

__all__ = ["HeaderPlan", "Template", "TemplateCache"]

_DEDUP = "upstash-deduplication-id"
# the stored-record fields that come from the configuration headers alone
_CONFIG_FIELDS = frozenset({
    "method", "max_retries", "retry_delay_expr", "timeout_s", "callback", "callback_cfg",
    "failure_callback", "failure_callback_cfg", "label", "redact",
})
_MAX_ENTRIES = 1024


@dataclass(frozen=True, eq=False)
class HeaderPlan:
    """Where each kind of header sits in an item's header dict (by position)."""

    # which plan this is (templates are keyed by it)
    ident: int
    # (position, lower-cased name) of every header that feeds the configuration
    config: tuple[tuple[int, str], ...]
    # (position, canonical forwarded name) of every ``Upstash-Forward-*`` header
    forward: tuple[tuple[int, str], ...]
    # position of ``Upstash-Deduplication-Id``, if any
    dedup: int | None

    @classmethod
    def of(cls, ident: int, names: tuple[str, ...]) -> HeaderPlan | None:
        """The plan for these header names, or None when only the full parse will do
        (names that collide once lower-cased, or that are not strings)."""
        if not all(isinstance(n, str) for n in names):
            return None
        lowered = [n.lower() for n in names]
        if len(set(lowered)) != len(lowered):
            return None
        config: list[tuple[int, str]] = []
        forward: list[tuple[int, str]] = []
        dedup: int | None = None
        for i, name in enumerate(lowered):
            if name.startswith("upstash-forward-"):
                target = name[16:]
                if target not in NEVER_FORWARD:
                    forward.append((i, canonical_header(target)))
            elif name == _DEDUP:
                dedup = i
            elif name == "content-type" or name.startswith("upstash-"):
                config.append((i, name))
            # any other header is ignored by parse_publish_config (no header forwarding here)
        return cls(ident, tuple(config), tuple(forward), dedup)


@dataclass(frozen=True)
class Template:
    """The parsed configuration headers of a batch item (everything but what varies)."""

    # the 400 sentence a request with these headers gets (None: valid)
    error: str | None
    # False: valid, but the fast path does not cover it (workflow, flow control, content
    # deduplication, an absolute not-before time, a delay or timeout over the plan's limit)
    fast: bool
    content_type: str | None
    delay_ms: int
    # the stored-record fields these headers set (only those differing from the defaults)
    fields: dict[str, Any]

    @classmethod
    def of(cls, headers: dict[str, str], limits: PlanLimits) -> Template:
        try:
            cfg = parse_publish_config(headers)
        except BadValue as exc:
            return cls(str(exc), False, None, 0, {})
        max_delay = limits.max_delay_s
        fast = (
            not cfg.workflow and not cfg.content_dedup and cfg.flow is None
            and not cfg.not_before_ms
            and (max_delay is None or cfg.delay_ms <= max_delay * 1000)
            and (cfg.timeout_s is None or cfg.timeout_s <= limits.max_response_duration_s)
        )
        probe = Message(id="", url="", seq=0, created_at=0, next_at=0,
                        **cfg.message_fields())
        fields = {k: v for k, v in probe.to_record().items() if k in _CONFIG_FIELDS}
        content_type = cfg.header["Content-Type"][0] if "Content-Type" in cfg.header else None
        return cls(None, fast, content_type, cfg.delay_ms, fields)


class TemplateCache:
    """Plans by header names and templates by configuration values (bounded)."""

    def __init__(self, limits: PlanLimits) -> None:
        self._limits = limits
        self._plans: dict[tuple[str, ...], HeaderPlan | None] = {}
        self._templates: dict[tuple[Any, ...], Template] = {}
        self._idents = 0

    def plan(self, names: tuple[str, ...]) -> HeaderPlan | None:
        try:
            return self._plans[names]
        except KeyError:
            pass
        if len(self._plans) >= _MAX_ENTRIES:
            self._plans.clear()
        self._idents += 1
        plan = self._plans[names] = HeaderPlan.of(self._idents, names)
        return plan

    def template(self, plan: HeaderPlan, values: tuple[Any, ...]) -> Template | None:
        """The template for ``values`` (all the item's header values, in order); None when
        a configuration value is not a string (the full parse turns it into one)."""
        config = [values[i] for i, _ in plan.config]
        for value in config:
            if value.__class__ is not str:
                return None
        key = (plan.ident, *config)
        try:
            return self._templates[key]
        except KeyError:
            pass
        if len(self._templates) >= _MAX_ENTRIES:
            self._templates.clear()
        headers = {name: values[i] for i, name in plan.config}
        template = self._templates[key] = Template.of(headers, self._limits)
        return template
