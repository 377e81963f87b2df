"""Schedules: a cron (optionally ``CRON_TZ=<zone> ``) that publishes a stored request."""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from qstash_server.messages import PublishConfig, body_fields, canonical_header, redact_view
from qstash_server.timing import BadValue, parse_duration_s

__all__ = ["Schedule", "next_fire_ms", "validate_cron"]


def _split(cron: str) -> tuple[ZoneInfo | timezone, str]:
    text = cron.strip()
    if text.startswith("CRON_TZ="):
        zone_part, _, rest = text.partition(" ")
        zone_name = zone_part[len("CRON_TZ="):]
        try:
            return ZoneInfo(zone_name), rest.strip()
        except (ZoneInfoNotFoundError, ValueError):
            raise BadValue(f"unknown time zone {zone_name!r} in CRON_TZ") from None
    return UTC, text


def validate_cron(cron: str) -> str:
    _zone, expr = _split(cron)
    if len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise BadValue(f"invalid cron expression {cron!r}, expected 5 fields like '*/5 * * * *'")
    return cron


def next_fire_ms(cron: str, after_ms: int) -> int:
    """The first fire time strictly after ``after_ms`` (unix ms)."""
    zone, expr = _split(cron)
    start = datetime.fromtimestamp(after_ms / 1000, tz=zone)
    nxt = croniter(expr, start).get_next(datetime)
    return int(nxt.timestamp() * 1000)


@dataclass
class Schedule:
    id: str
    cron: str
    destination: str
    created_at: int
    config_headers: dict[str, str]
    body: bytes = b""
    queue: str | None = None
    paused: bool = False
    next_at: int = 0
    last_at: int | None = None
    last_states: dict[str, str] = field(default_factory=dict)
    caller_ip: str | None = None

    def to_record(self) -> dict[str, Any]:
        data = asdict(self)
        data["body"] = base64.b64encode(self.body).decode()
        return data

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Schedule:
        values = dict(data)
        values["body"] = base64.b64decode(values["body"])
        return cls(**values)

    def to_api(self, cfg: PublishConfig) -> dict[str, Any]:
        red_body, header = redact_view(cfg.redact, self.body, cfg.header)
        out: dict[str, Any] = {
            "scheduleId": self.id,
            "cron": self.cron,
            "destination": self.destination,
            "createdAt": self.created_at,
            "method": cfg.method,
            "header": header,
            "retries": cfg.max_retries,
            "isPaused": self.paused,
            "nextScheduleTime": self.next_at,
        }
        out.update(body_fields(self.body, red_body))
        if (raw := self.config_headers.get("upstash-delay")) is not None:
            out["delay"] = int(parse_duration_s(raw))
        if cfg.timeout_s is not None:
            out["timeout"] = int(cfg.timeout_s)
        optional: dict[str, Any] = {
            "callback": cfg.callback,
            "failureCallback": cfg.failure_callback,
            "queueName": self.queue,
            "retryDelayExpression": cfg.retry_delay_expr,
            "label": cfg.label,
            "callerIP": self.caller_ip,
            "lastScheduleTime": self.last_at,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if cfg.label:
            out["labels"] = [p.strip() for p in cfg.label.split(",") if p.strip()]
        if cfg.callback:
            out["callbackHeader"] = {
                canonical_header(k[8:]): [v]
                for k, v in cfg.callback_cfg.items()
                if k.startswith("forward-")
            }
        if cfg.failure_callback:
            out["failureCallbackHeader"] = {
                canonical_header(k[8:]): [v]
                for k, v in cfg.failure_callback_cfg.items()
                if k.startswith("forward-")
            }
        if cfg.flow is not None:
            out["flowControlKey"] = cfg.flow.key
            for name in ("parallelism", "rate", "period"):
                if (value := getattr(cfg.flow, name)) is not None:
                    out[name] = value
        if self.last_states:
            out["lastScheduleStates"] = self.last_states
        return out
