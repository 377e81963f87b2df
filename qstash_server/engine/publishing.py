"""Publishing: accepting one message (publish, enqueue), deduplication; batches: ``batches``."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from qstash_server.engine.flow_control import FlowKey
from qstash_server.engine.messages import Message
from qstash_server.engine.publish_config import (
    PublishConfig,
    content_dedup_key,
    is_url,
    parse_publish_config,
    validate_name,
)
from qstash_server.engine.state import (
    DEDUP_WINDOW_MS,
    BrokerState,
    _dedup_hit,
    _dedup_row,
    _mark_deduplicated,
)
from qstash_server.engine.timing import BadValue, now_ms
from qstash_server.problems import ApiError

__all__ = ["PublishingOps"]


class PublishingOps(BrokerState):
    """Accepting messages."""

    def publish(
        self,
        destination: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        queue: str | None = None,
        caller_ip: str | None = None,
        all_headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Publish (or enqueue when ``queue``) one request; returns (status, JSON answer)."""
        try:
            cfg = parse_publish_config(headers, all_headers_forward=all_headers)
        except BadValue as exc:
            raise ApiError(400, str(exc)) from None
        return self.accept(destination, body, cfg, queue=queue, caller_ip=caller_ip)

    def accept(
        self,
        destination: str,
        body: bytes,
        cfg: PublishConfig,
        *,
        queue: str | None = None,
        caller_ip: str | None = None,
        schedule_id: str | None = None,
        kind: str = "message",
        count_quota: bool = True,
    ) -> tuple[int, Any]:
        if len(body) > self.limits.max_message_bytes:
            raise ApiError(
                412,
                f"message size {len(body)} bytes exceeds the {self.limits.name} plan's maximum "
                f"of {self.limits.max_message_bytes} bytes",
            )
        targets: list[tuple[str, str | None]]
        topic: str | None = None
        if is_url(destination):
            targets = [(destination, None)]
        else:
            try:
                validate_name("url group", destination)
            except BadValue:
                raise ApiError(
                    400, f"invalid destination {destination!r}: expected a URL or a URL group name"
                ) from None
            group = self.groups.get(destination)
            if group is None or not group.endpoints:
                raise ApiError(404, f"url group {destination} not found")
            topic = destination
            targets = [(e["url"], e.get("name") or None) for e in group.endpoints]
        now = now_ms()
        not_before = cfg.not_before_ms or (now + cfg.delay_ms if cfg.delay_ms else 0)
        max_delay = self.limits.max_delay_s
        if max_delay is not None and not_before and not_before - now > max_delay * 1000:
            raise ApiError(400, f"delay exceeds the {self.limits.name} plan's maximum of {max_delay}s")
        if cfg.timeout_s is not None and cfg.timeout_s > self.limits.max_response_duration_s:
            raise ApiError(
                400,
                f"timeout exceeds the {self.limits.name} plan's maximum of "
                f"{self.limits.max_response_duration_s}s",
            )
        # deduplication (and workflow run ids, which dedupe the same way)
        dedup_key: str | None = None
        run_id = cfg.workflow.get("upstash-workflow-runid")
        is_init = cfg.workflow.get("upstash-workflow-init", "").lower() == "true"
        if cfg.dedup_id is not None:
            dedup_key = "id:" + cfg.dedup_id
        elif cfg.content_dedup:
            dedup_key = content_dedup_key(destination, body, cfg.header)
        elif run_id and is_init and kind == "message":
            dedup_key = "run:" + run_id
        if run_id and is_init and kind == "message" and run_id in self.runs:
            # a run with this id exists: the start is deduplicated, whatever its age
            return 202, {"messageId": self.runs[run_id]["initMessageId"], "deduplicated": True}
        if dedup_key is not None:
            hit = self._dedup_get(dedup_key)
            if hit is not None and hit[1] > now:
                return 202, _mark_deduplicated(hit[0])
        if queue is not None:
            try:
                validate_name("queue", queue)
            except BadValue as exc:
                raise ApiError(400, str(exc)) from None
            if queue not in self.queues:
                self._check_queue_capacity()
        if count_quota:
            self._check_quota(len(targets))
        # accepted from here on
        if queue is not None and queue not in self.queues:
            self._create_queue(queue, 1, False, now)
        results: list[dict[str, Any]] = []
        for url, endpoint_name in targets:
            msg = self._new_message(
                url, body, cfg, now=now, not_before=not_before, queue=queue, topic=topic,
                endpoint_name=endpoint_name, schedule_id=schedule_id, caller_ip=caller_ip,
                kind=kind,
            )
            msg.dedup_key = dedup_key
            self._admit(msg)
            item: dict[str, Any] = {"messageId": msg.id}
            if topic is not None:
                item["url"] = url
                item["deduplicated"] = False
            results.append(item)
        if run_id and is_init and kind == "message" and run_id not in self.runs:
            run = {
                "runId": run_id,
                "url": cfg.workflow.get("upstash-workflow-url", targets[0][0]),
                "initBody": base64.b64encode(body).decode(),
                "initMessageId": results[0]["messageId"],
                "steps": [],
                "state": "RUN_STARTED",
                "createdAt": now,
            }
            self.runs[run_id] = run
            self.store.put("run", run_id, run)
        if count_quota:
            self._count_quota(len(targets))
        answer: Any = results if topic is not None else results[0]
        if dedup_key is not None:
            expires = now + DEDUP_WINDOW_MS
            if self.stored_only:
                if self._dedup_batch is not None:
                    self._dedup_batch[dedup_key] = (answer, expires)
            else:
                self.dedup[dedup_key] = (answer, expires)
            self.store.put_dedup(dedup_key, _dedup_row(answer, expires))
        return 200, answer

    def _dedup_get(self, key: str) -> tuple[Any, int] | None:
        if not self.stored_only:
            return self.dedup.get(key)
        if self._dedup_batch is not None and (key in self._dedup_batch or key.startswith("id:")):
            return self._dedup_batch.get(key)  # explicit ids were all read with the batch
        row = self.store.get_dedup([key]).get(key)
        return None if row is None else _dedup_hit(row)

    def _new_message(
        self,
        url: str,
        body: bytes,
        cfg: PublishConfig,
        *,
        now: int,
        not_before: int,
        queue: str | None,
        topic: str | None,
        endpoint_name: str | None,
        schedule_id: str | None,
        caller_ip: str | None,
        kind: str,
    ) -> Message:
        seq = self._next_seq()
        return Message(
            id=self._message_id(seq),
            url=url,
            seq=seq,
            created_at=now,
            next_at=max(now, not_before),
            body=body,
            header=cfg.header,
            not_before=not_before,
            queue=queue,
            topic=topic,
            endpoint_name=endpoint_name,
            schedule_id=schedule_id,
            caller_ip=caller_ip,
            kind=kind,
            **cfg.message_fields(),
        )

    def _admit(self, msg: Message) -> None:
        self._save(msg)
        self._log(msg, "CREATED")
        if msg.flow_key:
            fk = self.flow.get(msg.flow_key)
            if fk is None:
                fk = self.flow[msg.flow_key] = FlowKey(msg.flow_key)
            fk.configure(msg.flow_parallelism, msg.flow_rate, msg.flow_period)
            self.store.put("flow", fk.key, fk.to_record())
        if self.stored_only:  # never delivered: the stored row is all there is
            if msg.queue is not None and msg.slot_queue is None:
                self.queues[msg.queue].backlog += 1
            return
        self.messages[msg.id] = msg
        if msg.queue is not None and msg.slot_queue is None:
            q = self.queues[msg.queue]
            q.pending.append(msg.id)
            if not self.settings.accept_only:
                self._pump_queue(q)
        else:
            self._schedule(msg)

    def expire_dedup(self) -> None:
        """Forget deduplication records older than the window."""
        now = now_ms()
        for key in [k for k, (_answer, expires) in self.dedup.items() if expires <= now]:
            del self.dedup[key]
            self.store.delete_dedup(key)
