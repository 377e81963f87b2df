"""Schedules: create, pause, delete, and firing them when their cron comes due."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from qstash_server.broker.state import BrokerState
from qstash_server.messages import is_url, parse_publish_config, validate_name
from qstash_server.problems import ApiError
from qstash_server.schedules import Schedule, next_fire_ms, validate_cron
from qstash_server.timing import BadValue, now_ms

__all__ = ["ScheduleOps"]

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
