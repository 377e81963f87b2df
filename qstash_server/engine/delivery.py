"""Delivery: what to send for an attempt and what its outcome does (retry, DLQ, callbacks)."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

from qstash_server.engine.dead_letters import dlq_entry
from qstash_server.engine.messages import Message
from qstash_server.engine.publish_config import parse_publish_config
from qstash_server.engine.state import (
    FINAL_STATES,
    AttemptResult,
    BrokerState,
    OutgoingRequest,
)
from qstash_server.engine.timing import (
    BadValue,
    default_backoff_s,
    evaluate_retry_delay_ms,
    now_ms,
    retry_after_s,
)

__all__ = ["DeliveryOps"]

_log = logging.getLogger(__name__)

# headers the server sets itself on every delivery; forwarded copies are dropped
_SERVER_SET = frozenset({
    "upstash-message-id", "upstash-retried", "upstash-signature", "user-agent",
    "upstash-topic-name", "upstash-schedule-id", "upstash-caller-ip", "upstash-workflow-runid",
    "upstash-workflow-url", "content-length", "host",
})


class DeliveryOps(BrokerState):
    """Delivery attempts and their outcomes."""

    def dispatch_due(self, msg: Message) -> None:
        """Called by the dispatcher when a message's time has come."""
        if msg.state in FINAL_STATES:
            return
        queue_name = msg.slot_queue or (msg.queue if msg.kind == "message" else None)
        if queue_name is not None:
            q = self.queues.get(queue_name)
            if q is not None and q.paused:
                q.parked.append(msg.id)
                return
        if msg.flow_key:
            fk = self.flow.get(msg.flow_key)
            if fk is not None:
                if fk.blocked(time.time()):
                    fk.waitlist.append(msg.id)
                    self.pump_flow(fk.key)
                    return
                fk.acquire()
        self._start(msg)

    def _start(self, msg: Message) -> None:
        assert self.dispatcher is not None
        msg.state = "ACTIVE"
        self._log(msg, "ACTIVE")
        self.dispatcher.start(msg)

    def outgoing(self, msg: Message) -> OutgoingRequest:
        """What to send for this attempt (body rewritten for workflow steps)."""
        headers: dict[str, str] = {}
        for name, values in msg.header.items():
            if name.lower() not in _SERVER_SET:
                headers[name] = ",".join(values)
        body = msg.body
        run_id = msg.workflow_run_id
        if run_id:
            headers["Upstash-Workflow-RunId"] = run_id
            if url := msg.workflow.get("upstash-workflow-url"):
                headers["Upstash-Workflow-Url"] = url
            run = self.runs.get(run_id)
            call_type = msg.workflow.get("upstash-workflow-calltype", "step")
            if run is not None and msg.kind == "message" and call_type == "step":
                body = self._workflow_body(run, msg)
        headers["Upstash-Message-Id"] = msg.id
        headers["Upstash-Retried"] = str(msg.retried)
        headers["User-Agent"] = "Upstash-QStash"
        if msg.topic:
            headers["Upstash-Topic-Name"] = msg.topic
        if msg.schedule_id:
            headers["Upstash-Schedule-Id"] = msg.schedule_id
        if msg.caller_ip:
            headers["Upstash-Caller-Ip"] = msg.caller_ip
        timeout = float(self.limits.max_response_duration_s)
        if msg.timeout_s:
            timeout = min(timeout, msg.timeout_s)
        return OutgoingRequest(msg.url, msg.method, headers, body, timeout)

    def attempt_done(self, msg: Message, result: AttemptResult) -> None:
        """Record one attempt's outcome: delivered, retry later, or failed to the DLQ."""
        if msg.flow_key and (fk := self.flow.get(msg.flow_key)) is not None:
            fk.active = max(0, fk.active - 1)
            self.pump_flow(fk.key)
        if msg.id not in self.messages:
            return
        resp_headers = {k: [v] for k, v in result.headers.items()}
        resp_body_b64 = base64.b64encode(result.body).decode()
        status = result.status
        delivered = status is not None and 200 <= status < 300
        if msg.id in self.cancelling:
            # a cancel does not interrupt the attempt in flight ("CANCELLED at the next delivery
            # time"): if the endpoint answered 2xx the message was delivered
            self.cancelling.discard(msg.id)
            if not delivered:
                self._finish(msg, "CANCELED")
                return
        if delivered:
            self._log(msg, "DELIVERED", responseStatus=status, responseBody=resp_body_b64,
                      responseHeader=resp_headers)
            self._finish(msg, "DELIVERED", result=result)
            return
        error = result.error or f"endpoint answered {status}"
        non_retryable = status == 489 and (
            result.headers.get("upstash-nonretryable-error", "").lower() == "true"
        )
        self._log(msg, "ERROR", error=error, responseStatus=status, responseBody=resp_body_b64,
                  responseHeader=resp_headers)
        if non_retryable or msg.retried >= msg.max_retries:
            self._log(msg, "FAILED", error=error, responseStatus=status,
                      responseBody=resp_body_b64, responseHeader=resp_headers)
            self._finish(msg, "FAILED", result=result)
            return
        # schedule a retry
        self._callback(msg, result, final=False)
        delay_s: float | None = retry_after_s(result.headers, time.time())
        if delay_s is None:
            if msg.retry_delay_expr:
                try:
                    delay_s = evaluate_retry_delay_ms(msg.retry_delay_expr, msg.retried) / 1000
                except BadValue:
                    delay_s = default_backoff_s(msg.retried + 1)
            else:
                delay_s = default_backoff_s(msg.retried + 1)
        delay_ms = int(delay_s * 1000 * self.settings.backoff_scale)
        msg.retried += 1
        msg.state = "RETRY"
        msg.next_at = now_ms() + delay_ms
        self._log(msg, "RETRY", nextDeliveryTime=msg.next_at, error=error, responseStatus=status)
        self._save(msg)
        self._schedule(msg)

    def _finish(self, msg: Message, state: str, *, result: AttemptResult | None = None) -> None:
        msg.state = state
        self.messages.pop(msg.id, None)
        self.store.delete_message(msg.seq)
        if state == "CANCELED":
            self._log(msg, "CANCELED")
        made: list[Message] = []
        if result is not None:
            cb = self._callback(msg, result, final=True)
            if cb is not None:
                made.append(cb)
        if state == "FAILED" and result is not None:
            self._dlq_counter += 1
            dlq_id = f"{now_ms()}-{self._dlq_counter}"
            entry = dlq_entry(dlq_id, msg, now_ms(), result.status,
                              {k: [v] for k, v in result.headers.items()}, result.body)
            self.dlq[dlq_id] = entry
            self.store.put("dlq", dlq_id, entry)
            fcb = self._failure_callback(msg, result, dlq_id)
            if fcb is not None:
                made.append(fcb)
        sc = self.schedules.get(msg.schedule_id) if msg.schedule_id else None
        if sc is not None and msg.id in sc.last_states:
            sc.last_states[msg.id] = "SUCCESS" if state == "DELIVERED" else "FAIL"
            self.store.put("schedule", sc.id, sc.to_record())
        # queue slot: hand it to this message's final callbacks, else release it
        queue_name = msg.slot_queue or (msg.queue if msg.kind == "message" else None)
        q = self.queues.get(queue_name) if queue_name else None
        if q is not None and msg.id in q.holding and made:
            q.holding.discard(msg.id)
            for cb in made:
                cb.slot_queue = q.name
                q.holding.add(cb.id)
                self._save(cb)
                self._schedule(cb)
        else:
            for cb in made:
                self._schedule(cb)
            self._release_slot(msg)

    def _callback_payload(self, msg: Message, result: AttemptResult) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "status": result.status or 0,
            "header": {k: [v] for k, v in result.headers.items()},
            "body": base64.b64encode(result.body).decode(),
            "retried": msg.retried,
            "maxRetries": msg.max_retries,
            "sourceMessageId": msg.id,
            "url": msg.url,
            "method": msg.method,
            "sourceHeader": msg.header,
            "sourceBody": base64.b64encode(msg.body).decode(),
            "notBefore": msg.not_before,
            "createdAt": msg.created_at,
        }
        for key, value in (("topicName", msg.topic), ("endpointName", msg.endpoint_name),
                           ("scheduleId", msg.schedule_id), ("callerIP", msg.caller_ip),
                           ("queueName", msg.queue)):
            if value is not None:
                payload[key] = value
        if msg.workflow_run_id:
            payload["workflowRunId"] = msg.workflow_run_id
        return payload

    def _make_callback(self, msg: Message, url: str, cfg_map: dict[str, str],
                       payload: dict[str, Any], kind: str) -> Message | None:
        headers = {"upstash-" + k: v for k, v in cfg_map.items()}
        headers["content-type"] = "application/json"
        headers.setdefault("upstash-retries", str(msg.max_retries))
        try:
            cfg = parse_publish_config(headers)
        except BadValue as exc:
            _log.warning("callback for %s not sent: %s", msg.id, exc)
            return None
        now = now_ms()
        cb = self._new_message(
            url, json.dumps(payload).encode(), cfg, now=now,
            not_before=now + cfg.delay_ms if cfg.delay_ms else 0, queue=None, topic=None,
            endpoint_name=None, schedule_id=None, caller_ip=msg.caller_ip, kind=kind,
        )
        self.messages[cb.id] = cb
        self._save(cb)
        self._log(cb, "CREATED")
        return cb

    def _callback(self, msg: Message, result: AttemptResult, *, final: bool) -> Message | None:
        if not msg.callback:
            return None
        cb = self._make_callback(msg, msg.callback, msg.callback_cfg,
                                 self._callback_payload(msg, result), "callback")
        if cb is not None and not final:
            self._schedule(cb)
        return cb

    def _failure_callback(self, msg: Message, result: AttemptResult, dlq_id: str) -> Message | None:
        if not msg.failure_callback:
            return None
        payload = self._callback_payload(msg, result)
        payload["dlqId"] = dlq_id
        return self._make_callback(msg, msg.failure_callback, msg.failure_callback_cfg, payload,
                                   "failure_callback")
