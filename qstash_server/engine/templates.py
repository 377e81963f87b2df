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

from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from migrator.qstash_tiers import TierLimits
from qstash_server.engine.messages import Message
from qstash_server.engine.publish_config import NEVER_FORWARD, canonical_header, parse_publish_config
from qstash_server.engine.timing import BadValue

__all__ = ["HeaderPlan", "Template", "TemplateCache"]

_DEDUP = "upstash-deduplication-id"
# the stored-record fields that come from the configuration headers alone
_CONFIG_FIELDS = frozenset({
    "method", "max_retries", "retry_delay_expr", "timeout_s", "callback", "callback_cfg",
    "failure_callback", "failure_callback_cfg", "label", "redact",
})
_MAX_ENTRIES = 1024


class HeaderPlan:
    """Where each kind of header sits in an item's header dict (by position), and the
    templates seen for this set of names (by configuration values)."""

    __slots__ = ("_key", "_limits", "_templates", "config", "dedup", "forward")

    def __init__(self, config: tuple[tuple[int, str], ...], forward: tuple[tuple[int, str], ...],
                 dedup: int | None, limits: TierLimits) -> None:
        # (position, lower-cased name) of every header that feeds the configuration
        self.config = config
        # (position, canonical forwarded name) of every ``Upstash-Forward-*`` header
        self.forward = forward
        # position of ``Upstash-Deduplication-Id``, if any
        self.dedup = dedup
        self._limits = limits
        self._templates: dict[Any, Template] = {}
        positions = [i for i, _ in config]
        # the configuration values of an item: one value, or a tuple of several
        self._key: Callable[[tuple[Any, ...]], Any] | None = (
            None if not positions else itemgetter(*positions)
        )

    @classmethod
    def of(cls, names: tuple[str, ...], limits: TierLimits) -> HeaderPlan | None:
        """The plan for these header names, or None when only the full parse will do
        (names that collide once lower-cased)."""
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
        return cls(tuple(config), tuple(forward), dedup, limits)

    def template_for(self, values: tuple[Any, ...]) -> Template | None:
        """The template for an item's header values (all of them, in order); None when a
        configuration value is not a string (the full parse turns it into one)."""
        key = None if self._key is None else self._key(values)
        if key.__class__ is tuple:
            if not all(v.__class__ is str for v in key):
                return None
        elif key is not None and key.__class__ is not str:
            return None
        try:
            return self._templates[key]
        except KeyError:
            pass
        if len(self._templates) >= _MAX_ENTRIES:
            self._templates.clear()
        headers = {name: values[i] for i, name in self.config}
        template = self._templates[key] = Template.of(headers, self._limits)
        return template


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
    def of(cls, headers: dict[str, str], limits: TierLimits) -> Template:
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
    """Header plans by header names (bounded; each plan keeps its own templates)."""

    def __init__(self, limits: TierLimits) -> None:
        self._limits = limits
        self._plans: dict[tuple[str, ...], HeaderPlan | None] = {}

    def plan(self, names: tuple[str, ...]) -> HeaderPlan | None:
        try:
            return self._plans[names]
        except KeyError:
            pass
        if len(self._plans) >= _MAX_ENTRIES:
            self._plans.clear()
        plan = self._plans[names] = HeaderPlan.of(names, self._limits)
        return plan
