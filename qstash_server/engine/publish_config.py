"""Messages: the stored record, how publish headers become one, and its API shape."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from qstash_server.engine.timing import (
    BadValue,
    parse_duration_s,
    validate_retry_delay,
)

__all__ = [
    "DEFAULT_RETRIES",
    "NAME_PATTERN",
    "NEVER_FORWARD",
    "FlowControl",
    "PublishConfig",
    "body_fields",
    "canonical_header",
    "content_dedup_key",
    "is_url",
    "parse_flow_control",
    "parse_publish_config",
    "parse_redaction",
    "redact_view",
    "redacted",
    "validate_name",
]

DEFAULT_RETRIES = 3
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
NEVER_FORWARD = _NEVER_FORWARD = frozenset(
    {"host", "content-length", "connection", "transfer-encoding", "keep-alive", "upgrade", "te",
     "trailer"}
)
_NOT_IN_HEADER_FORWARD = _NEVER_FORWARD | {"authorization", "proxy-authorization",
                                           "accept-encoding"}


@functools.lru_cache(maxsize=4096)
def canonical_header(name: str) -> str:
    """Go's canonical form (``x-my-header`` -> ``X-My-Header``), as QStash echoes headers."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


@functools.lru_cache(maxsize=4096)
def is_url(destination: str) -> bool:
    if not destination.startswith(("http://", "https://")):
        return False
    try:
        parts = urlsplit(destination)
    except ValueError:
        return False
    return bool(parts.hostname)


def validate_name(kind: str, name: str) -> str:
    if not name or not NAME_PATTERN.match(name):
        raise BadValue(
            f"invalid {kind} name {name!r}: only letters, digits, '-', '_' and '.' are allowed"
        )
    return name


@dataclass(frozen=True)
class FlowControl:
    key: str
    parallelism: int | None = None
    rate: int | None = None
    period: int | None = None


def parse_flow_control(key: str | None, value: str | None) -> FlowControl | None:
    if not key:
        if value:
            raise BadValue("Upstash-Flow-Control-Value needs Upstash-Flow-Control-Key")
        return None
    parallelism = rate = period = None
    for part in (value or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, raw = part.partition("=")
        name = name.strip().lower()
        raw = raw.strip()
        if not sep:
            raise BadValue(f"invalid flow control value {part!r}, expected name=value")
        try:
            if name == "parallelism":
                parallelism = int(raw)
            elif name == "rate":
                rate = int(raw)
            elif name == "period":
                period = max(1, int(parse_duration_s(raw)))
            else:
                raise BadValue(f"unknown flow control setting {name!r}")
        except ValueError as exc:
            raise BadValue(f"invalid flow control value {part!r}: {exc}") from None
    if parallelism is not None and parallelism < 1:
        raise BadValue("flow control parallelism must be at least 1")
    if rate is not None and rate < 1:
        raise BadValue("flow control rate must be at least 1")
    if period is not None and period > 7 * 86400:
        raise BadValue("flow control period cannot exceed 1 week")
    if (rate is not None or parallelism is not None) and period is None:
        period = 1
    return FlowControl(key=key, parallelism=parallelism, rate=rate, period=period)


@dataclass
class PublishConfig:
    """Everything a publish request's headers say, independent of the destination."""

    method: str = "POST"
    header: dict[str, list[str]] = field(default_factory=dict)
    delay_ms: int = 0
    not_before_ms: int = 0
    max_retries: int = DEFAULT_RETRIES
    retry_delay_expr: str | None = None
    timeout_s: float | None = None
    callback: str | None = None
    callback_cfg: dict[str, str] = field(default_factory=dict)
    failure_callback: str | None = None
    failure_callback_cfg: dict[str, str] = field(default_factory=dict)
    dedup_id: str | None = None
    content_dedup: bool = False
    flow: FlowControl | None = None
    label: str | None = None
    workflow: dict[str, str] = field(default_factory=dict)
    redact: str | None = None

    def message_fields(self) -> dict[str, Any]:
        """The ``Message`` fields this configuration sets (all but the per-item header)."""
        flow = self.flow
        return {
            "method": self.method,
            "max_retries": self.max_retries,
            "retry_delay_expr": self.retry_delay_expr,
            "timeout_s": self.timeout_s,
            "callback": self.callback,
            "callback_cfg": self.callback_cfg,
            "failure_callback": self.failure_callback,
            "failure_callback_cfg": self.failure_callback_cfg,
            "label": self.label,
            "flow_key": flow.key if flow else None,
            "flow_rate": flow.rate if flow else None,
            "flow_parallelism": flow.parallelism if flow else None,
            "flow_period": flow.period if flow else None,
            "workflow": self.workflow,
            "redact": self.redact,
        }


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def parse_publish_config(
    headers: Mapping[str, str], *, all_headers_forward: Mapping[str, str] | None = None
) -> PublishConfig:
    """Read QStash's publish headers (names lower-cased) into a config, or raise BadValue."""
    cfg = PublishConfig()
    # one pass: forwarded headers, callback/workflow settings, and the rest of the config
    # headers (usually none or one, e.g. a deduplication id) for the look-ups below
    content_type: str | None = None
    explicit: dict[str, list[str]] = {}
    config: dict[str, str] = {}
    for name, value in headers.items():
        if not name.startswith("upstash-"):
            if name == "content-type" and value.strip():
                content_type = value
            continue
        if not value.strip():  # empty = not given
            continue
        if name.startswith("upstash-forward-"):
            target = name[16:]
            if target not in _NEVER_FORWARD:
                explicit[canonical_header(target)] = [value]
        elif name.startswith("upstash-callback-"):
            cfg.callback_cfg[name[17:]] = value
        elif name.startswith("upstash-failure-callback-"):
            cfg.failure_callback_cfg[name[25:]] = value
        elif name.startswith("upstash-workflow-") or name == "upstash-feature-set":
            cfg.workflow[name] = value
        else:
            config[name] = value
    forward: dict[str, list[str]] = {}
    if config and _bool(config.get("upstash-header-forward")) and all_headers_forward:
        for name, value in all_headers_forward.items():
            if name.startswith("upstash-") or name in _NOT_IN_HEADER_FORWARD:
                continue
            forward[canonical_header(name)] = [value]
    if forward:
        forward.update(explicit)
    else:
        forward = explicit
    if content_type:
        forward["Content-Type"] = [content_type]
    cfg.header = forward
    if not config:  # fast path: nothing else to read
        return cfg
    get = config.get
    if (raw := get("upstash-deduplication-id")) is not None:
        if ":" in raw:
            raise BadValue("DeduplicationId cannot contain ':'")
        cfg.dedup_id = raw
        if len(config) == 1:  # fast path: only a deduplication id (the bridge's items)
            return cfg
    method = (get("upstash-method") or "POST").upper()
    if method not in _METHODS:
        raise BadValue(f"invalid Upstash-Method {method!r}")
    cfg.method = method
    if (raw := get("upstash-delay")) is not None:
        cfg.delay_ms = int(parse_duration_s(raw) * 1000)
    if (raw := get("upstash-not-before")) is not None:
        try:
            cfg.not_before_ms = int(float(raw) * 1000)
        except ValueError:
            raise BadValue(f"invalid Upstash-Not-Before {raw!r}, expected unix seconds") from None
    if (raw := get("upstash-retries")) is not None:
        try:
            cfg.max_retries = int(raw)
        except ValueError:
            raise BadValue(f"invalid Upstash-Retries {raw!r}, expected an integer") from None
        if cfg.max_retries < 0:
            raise BadValue("Upstash-Retries cannot be negative")
    if (raw := get("upstash-retry-delay")) is not None:
        cfg.retry_delay_expr = validate_retry_delay(raw)
    if (raw := get("upstash-timeout")) is not None:
        cfg.timeout_s = parse_duration_s(raw)
    if (raw := get("upstash-callback")) is not None:
        if not is_url(raw):
            raise BadValue(f"invalid Upstash-Callback {raw!r}, expected an http(s) URL")
        cfg.callback = raw
    if (raw := get("upstash-failure-callback")) is not None:
        if not is_url(raw):
            raise BadValue(f"invalid Upstash-Failure-Callback {raw!r}, expected an http(s) URL")
        cfg.failure_callback = raw
    cfg.content_dedup = _bool(get("upstash-content-based-deduplication"))
    cfg.flow = parse_flow_control(get("upstash-flow-control-key"), get("upstash-flow-control-value"))
    if (raw := get("upstash-label")) is not None:
        cfg.label = raw
    if (raw := get("upstash-redact-fields")) is not None:
        parse_redaction(raw)
        cfg.redact = raw
    return cfg


_REDACT_PART = re.compile(r"^(body|headers?|header\[[^\]]+\])$", re.IGNORECASE)


def parse_redaction(spec: str | None) -> tuple[bool, bool, frozenset[str]]:
    """``Upstash-Redact-Fields``: (body?, all headers?, lower-cased header names)."""
    body = all_headers = False
    names: set[str] = set()
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        if not _REDACT_PART.match(part):
            raise BadValue(
                f"invalid Upstash-Redact-Fields part {part!r}: use body, headers or header[Name]"
            )
        lower = part.lower()
        if lower == "body":
            body = True
        elif lower in ("header", "headers"):
            all_headers = True
        else:
            names.add(lower[len("header["):-1])
    return body, all_headers, frozenset(names)


def redacted(value: bytes | str) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return "REDACTED:" + hashlib.sha256(raw).hexdigest()


def body_fields(body: bytes, redacted: str | None) -> dict[str, str]:
    """A message body as the API shows it: redacted text, UTF-8 text, or base64 for binary."""
    if redacted is not None:
        return {"body": redacted}
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"bodyBase64": base64.b64encode(body).decode()}


def redact_view(
    spec: str | None, body: bytes, header: dict[str, list[str]]
) -> tuple[str | None, dict[str, list[str]]]:
    """What the API shows: a redacted body (None = show the real one) and headers."""
    if not spec:
        return None, header
    red_body, all_headers, names = parse_redaction(spec)
    shown = {
        name: [redacted(v) for v in values]
        if all_headers or name.lower() in names else values
        for name, values in header.items()
    }
    return (redacted(body) if red_body else None), shown


def content_dedup_key(destination: str, body: bytes, header: dict[str, list[str]]) -> str:
    digest = hashlib.sha256()
    digest.update(destination.encode())
    digest.update(b"\0")
    digest.update(body)
    for name in sorted(header):
        digest.update(f"\0{name}={','.join(header[name])}".encode())
    return "content:" + digest.hexdigest()
