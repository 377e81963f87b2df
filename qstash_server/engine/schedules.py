"""Schedules: cron with CRON_TZ, the stored schedule, and create, pause, delete and firing
when their cron comes due."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from qstash_server.engine.publish_config import (
    PublishConfig,
    body_fields,
    canonical_header,
    is_url,
    parse_publish_config,
    redact_view,
    validate_name,
)
from qstash_server.engine.state import BrokerState
from qstash_server.engine.timing import BadValue, now_ms, parse_duration_s
from qstash_server.problems import ApiError

__all__ = ["Schedule", "ScheduleOps", "next_fire_ms", "validate_cron"]


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


_log = logging.getLogger(__name__)


class ScheduleOps(BrokerState):
    """Schedules."""

    def create_schedule(
        self,
        destination: str,
        body: bytes,
        headers: Mapping[str, str],
        caller_ip: str | None,
    ) -> str:
        cron = headers.get("upstash-cron")
        if not cron:
            raise ApiError(400, "Upstash-Cron header is required, e.g. '*/5 * * * *'")
        try:
            validate_cron(cron)
            parse_publish_config(headers)
        except BadValue as exc:
            raise ApiError(400, str(exc)) from None
        if "upstash-not-before" in headers:
            raise ApiError(400, "Upstash-Not-Before is not allowed on schedules")
        if not is_url(destination) and destination not in self.groups:
            raise ApiError(400, f"invalid destination {destination!r}: expected a URL or a URL group")
        if len(body) > self.limits.max_message_bytes:
            raise ApiError(412, "message size exceeds the plan's maximum")
        schedule_id = headers.get("upstash-schedule-id") or "scd_" + os.urandom(12).hex()
        try:
            validate_name("schedule id", schedule_id)
        except BadValue as exc:
            raise ApiError(400, str(exc)) from None
        queue = headers.get("upstash-queue-name")
        if queue:
            try:
                validate_name("queue", queue)
            except BadValue as exc:
                raise ApiError(400, str(exc)) from None
        if schedule_id not in self.schedules and len(self.schedules) >= self.limits.max_schedules:
            raise ApiError(
                412,
                f"schedule limit of {self.limits.max_schedules} reached on the {self.limits.name} plan",
            )
        now = now_ms()
        config = {
            k: v for k, v in headers.items()
            if (k.startswith("upstash-") and k not in ("upstash-cron", "upstash-schedule-id",
                                                       "upstash-queue-name"))
            or k == "content-type"
        }
        previous = self.schedules.get(schedule_id)
        sc = Schedule(
            id=schedule_id,
            cron=cron,
            destination=destination,
            created_at=previous.created_at if previous else now,
            config_headers=config,
            body=body,
            queue=queue or None,
            paused=False,
            next_at=next_fire_ms(cron, now),
            caller_ip=caller_ip,
        )
        self.schedules[schedule_id] = sc
        self.store.put("schedule", schedule_id, sc.to_record())
        return schedule_id

    def schedule_api(self, sc: Schedule) -> dict[str, Any]:
        return sc.to_api(parse_publish_config(sc.config_headers))

    def get_schedule(self, schedule_id: str) -> Schedule:
        sc = self.schedules.get(schedule_id)
        if sc is None:
            raise ApiError(404, f"schedule {schedule_id} not found")
        return sc

    def delete_schedule(self, schedule_id: str) -> None:
        if schedule_id in self.schedules:
            del self.schedules[schedule_id]
            self.store.delete("schedule", schedule_id)

    def pause_schedule(self, schedule_id: str, paused: bool) -> None:
        sc = self.get_schedule(schedule_id)
        sc.paused = paused
        if not paused:
            sc.next_at = next_fire_ms(sc.cron, now_ms())
        self.store.put("schedule", schedule_id, sc.to_record())

    def fire_schedule(self, sc: Schedule, now: int) -> None:
        """Publish the schedule's request once (cron tick or test trigger)."""
        try:
            cfg = parse_publish_config(sc.config_headers)
            _status, answer = self.accept(
                sc.destination, sc.body, cfg, queue=sc.queue, caller_ip=sc.caller_ip,
                schedule_id=sc.id,
            )
            ids = [a["messageId"] for a in (answer if isinstance(answer, list) else [answer])]
            sc.last_states = dict.fromkeys(ids, "IN_PROGRESS")
        except ApiError as exc:
            _log.warning("schedule %s could not publish: %s", sc.id, exc.message)
        sc.last_at = now
        sc.next_at = next_fire_ms(sc.cron, now)
        self.store.put("schedule", sc.id, sc.to_record())

    def tick_schedules(self) -> None:
        now = now_ms()
        for sc in list(self.schedules.values()):
            if not sc.paused and sc.next_at <= now:
                self.fire_schedule(sc, now)

    def list_schedules(self) -> list[dict[str, Any]]:
        return [self.schedule_api(s) for s in self.schedules.values()]
