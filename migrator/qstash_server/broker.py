"""The broker: all QStash state (in memory, written through to SQLite) and its rules.

The HTTP layer (``app``) translates requests into calls here; the delivery worker
(``delivery``) asks the broker what to send and reports each attempt's outcome back.
Everything runs on one event loop, so no locking is needed.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from migrator.qstash_server.dlq import dlq_entry, dlq_to_api
from migrator.qstash_server.flow_control import FlowKey
from migrator.qstash_server.logs import build_log
from migrator.qstash_server.messages import (
    Message,
    PublishConfig,
    content_dedup_key,
    is_url,
    parse_publish_config,
    validate_name,
)
from migrator.qstash_server.problems import ApiError
from migrator.qstash_server.queues import Queue
from migrator.qstash_server.schedules import Schedule, next_fire_ms, validate_cron
from migrator.qstash_server.settings import ServerSettings, generate_signing_key
from migrator.qstash_server.store import DedupRow, GroupCommitter, Store
from migrator.qstash_server.templates import TemplateCache
from migrator.qstash_server.timing import (
    BadValue,
    default_backoff_s,
    evaluate_retry_delay_ms,
    now_ms,
    retry_after_s,
)
from migrator.qstash_server.url_groups import UrlGroup

if TYPE_CHECKING:
    from migrator.qstash_server.delivery import Dispatcher

__all__ = ["AttemptResult", "Broker", "OutgoingRequest"]

_log = logging.getLogger(__name__)

DEDUP_WINDOW_MS = 10 * 60 * 1000
LOG_CAPACITY = 200_000
# accept-only keeps nothing per message in memory but this many recent log entries
STORED_LOG_CAPACITY = 1_000
# headers the server sets itself on every delivery; forwarded copies are dropped
_SERVER_SET = frozenset({
    "upstash-message-id", "upstash-retried", "upstash-signature", "user-agent",
    "upstash-topic-name", "upstash-schedule-id", "upstash-caller-ip", "upstash-workflow-runid",
    "upstash-workflow-url", "content-length", "host",
})
FINAL_STATES = frozenset({"DELIVERED", "FAILED", "CANCELED"})
_NO_EXTRA: dict[str, Any] = {}  # a log entry without extra fields (never modified)


@dataclass(frozen=True)
class AttemptResult:
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None


@dataclass(frozen=True)
class OutgoingRequest:
    url: str
    method: str
    headers: dict[str, str]
    body: bytes
    timeout_s: float


class Broker:
    """QStash's state and behaviour, independent of HTTP."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.limits = settings.limits
        # accept-only: messages and dedup records live in SQLite only (nothing per message
        # in memory), so a client benchmark can push any number of messages
        self.stored_only = settings.accept_only
        # accept-only with :memory: stores in a scratch file: nothing per message in memory
        self.store = Store(settings.db, on_disk=settings.accept_only)
        self.token = settings.token.get_secret_value()
        self.current_key = settings.current_signing_key.get_secret_value()
        self.next_key = settings.next_signing_key.get_secret_value()
        self.fault_rate = settings.fault_rate
        self.fault_statuses: tuple[int, ...] = settings.fault_statuses
        self.dispatcher: Dispatcher | None = None
        self.committer: GroupCommitter | None = None
        self.messages: dict[str, Message] = {}
        self.queues: dict[str, Queue] = {}
        self.groups: dict[str, UrlGroup] = {}
        self.schedules: dict[str, Schedule] = {}
        self.dlq: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.dedup: dict[str, tuple[Any, int]] = {}
        self.flow: dict[str, FlowKey] = {}
        self.cancelling: set[str] = set()
        self.daily_day = ""
        self.daily_count = 0
        self._seq = 0
        self._id_prefix = os.urandom(8).hex()
        self._id_counter = 0
        self._dlq_counter = 0
        # logs are kept in memory (newest last); built into documents only when listed
        # (a fast-path batch item logs its stored record's JSON instead of a Message)
        self.logs: deque[tuple[int, int, Message | bytes, str, dict[str, Any]]] = deque(
            maxlen=STORED_LOG_CAPACITY if self.stored_only else LOG_CAPACITY
        )
        # accept-only: dedup records of the batch being accepted (one SQLite read per batch):
        # key -> (answer, expires)
        self._dedup_batch: dict[str, tuple[Any, int]] | None = None
        self._log_seq = 0
        # batch items of the usual shape: parsed configuration by header names and values
        self._templates = TemplateCache(self.limits)
        # a str body this long or shorter is within the size limit whatever its characters
        self._utf8_safe = self.limits.max_message_bytes // 4
        self.fast_batch = True  # tests turn it off to compare with the full path
        self._load()

    # ------------------------------------------------------------------ lifecycle
    def _load(self) -> None:
        s = self.store
        for _, data in s.load("queue"):
            q = Queue.from_record(data)
            self.queues[q.name] = q
        for _, data in s.load("group"):
            g = UrlGroup.from_record(data)
            self.groups[g.name] = g
        for _, data in s.load("schedule"):
            sc = Schedule.from_record(data)
            self.schedules[sc.id] = sc
        for key, data in sorted(s.load("dlq"), key=lambda kv: _dlq_sort_key(kv[0])):
            self.dlq[key] = data
        for key, data in s.load("run"):
            self.runs[key] = data
        now = now_ms()
        for key, row in ([] if self.stored_only else s.load_dedup()):
            if row[0] > now:
                self.dedup[key] = _dedup_hit(row)
        for _, data in s.load("flow"):
            fk = FlowKey.from_record(data)
            self.flow[fk.key] = fk
        for key, data in s.load("meta"):
            if key == "daily":
                self.daily_day, self.daily_count = data["day"], data["count"]
            elif key == "seq":
                self._seq = data["seq"]
        if self.stored_only:
            # queue lag of the stored messages, without loading them
            for queue, n in s.message_counts_by_queue().items():
                if queue in self.queues:
                    self.queues[queue].backlog = n
            self._seq = max(self._seq, s.max_message_seq())
            loaded: list[Message] = []
        else:
            loaded = [Message.from_record(d) for d in s.load_messages()]
        for msg in loaded:
            self._seq = max(self._seq, msg.seq)
            self.messages[msg.id] = msg
        self.store.put("meta", "keys", {"current": self.current_key, "next": self.next_key})
        self.store.commit()

    def restore_delivery(self) -> None:
        """After start: put every stored, undelivered message back on its way."""
        for msg in sorted(self.messages.values(), key=lambda m: m.seq):
            if msg.state == "ACTIVE":
                msg.state = "RETRY" if msg.retried else "CREATED"
            if msg.slot_queue and msg.slot_queue in self.queues:
                self.queues[msg.slot_queue].holding.add(msg.id)
                self._schedule(msg)
            elif msg.queue and msg.kind == "message" and msg.queue in self.queues:
                q = self.queues[msg.queue]
                if msg.retried or msg.state in ("RETRY", "ERROR"):
                    q.holding.add(msg.id)
                    self._schedule(msg)
                else:
                    q.pending.append(msg.id)
            else:
                self._schedule(msg)
        for q in self.queues.values():
            self._pump_queue(q)

    def flush(self) -> None:
        """Persist pending changes: soon (background commit) when serving, else now."""
        if self.committer is not None:
            self.committer.request()
        else:
            self.store.commit()

    def close(self) -> None:
        self.flush()
        self.store.close()

    # ------------------------------------------------------------------ helpers
    def _new_id(self, prefix: str) -> str:
        """Unique ids: a random per-process prefix plus a counter (no syscall per id)."""
        self._id_counter += 1
        return f"{prefix}{self._id_prefix}{self._id_counter:010x}"

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _message_id(self, seq: int) -> str:
        """A message's id: the per-process prefix and its sequence number (its row's key)."""
        return f"msg_{self._id_prefix}{seq:010x}"

    def _log(self, msg: Message, state: str, **extra: Any) -> None:
        self._log_seq += 1
        self.logs.append((self._log_seq, now_ms(), msg, state, extra))

    def _save(self, msg: Message) -> None:
        self.store.put_message(msg.seq, msg.id, msg.queue, orjson.dumps(msg.to_record()))

    def _schedule(self, msg: Message) -> None:
        if self.dispatcher is not None and not self.settings.accept_only:
            self.dispatcher.schedule(msg)

    def check_fault(self) -> None:
        """Injected faults (test-only): refuse before accepting anything."""
        if self.fault_rate and random.random() < self.fault_rate:
            status = random.choice(self.fault_statuses)
            if status == 429:
                reset = int(time.time()) + 1
                raise ApiError(
                    429,
                    "burst rate limit exceeded (injected fault)",
                    {
                        "Burst-RateLimit-Limit": "100",
                        "Burst-RateLimit-Remaining": "0",
                        "Burst-RateLimit-Reset": str(reset),
                    },
                )
            raise ApiError(status, "service unavailable (injected fault)")

    def _check_quota(self, count: int) -> None:
        limit = self.limits.messages_per_day
        if limit is None:
            return
        day = time.strftime("%Y-%m-%d", time.gmtime())
        if day != self.daily_day:
            self.daily_day, self.daily_count = day, 0
        if self.daily_count + count > limit:
            reset = (int(time.time()) // 86400 + 1) * 86400
            raise ApiError(
                429,
                f"daily message quota of {limit} exceeded; it resets at midnight UTC",
                {
                    "RateLimit-Limit": str(limit),
                    "RateLimit-Remaining": str(max(0, limit - self.daily_count)),
                    "RateLimit-Reset": str(reset),
                },
            )

    def _count_quota(self, count: int) -> None:
        if self.limits.messages_per_day is None:
            return
        self.daily_count += count
        self.store.put("meta", "daily", {"day": self.daily_day, "count": self.daily_count})

    # ------------------------------------------------------------------ publishing
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

    def batch(self, items: Any, caller_ip: str | None) -> list[Any]:
        if not isinstance(items, list):
            raise ApiError(400, "batch body must be a JSON array of messages")
        # accept-only, unlimited plan: items of the usual shape take the fast path (same
        # answers and stored rows, see _accept_fast); anything else the full one
        fast = self.fast_batch and self.stored_only and self.limits.messages_per_day is None
        parsed: list[tuple[Any, ...]] = []
        if fast:
            parse_fast, parse_item, append = self._parse_fast, self._parse_item, parsed.append
            for index, item in enumerate(items):
                append(parse_fast(index, item) or parse_item(index, item))
        else:
            parsed = [self._parse_item(index, item) for index, item in enumerate(items)]
        if self.limits.messages_per_day is not None:
            total = 0
            for entry in parsed:
                destination = entry[1]
                group = self.groups.get(destination)
                total += len(group.endpoints) if group and not is_url(destination) else 1
            self._check_quota(total)
        if self.stored_only:
            keys = [key for entry in parsed if (key := entry[5]) is not None]
            self._dedup_batch = {k: _dedup_hit(row)
                                 for k, row in self.store.get_dedup(keys).items()}
        out: list[Any] = []
        try:
            now = now_ms()
            accept_fast = self._accept_fast
            for entry in parsed:
                if entry[0]:
                    out.append(accept_fast(entry, caller_ip, now))
                    continue
                _fast, destination, body, cfg, queue, _key = entry
                try:
                    _status, answer = self.accept(destination, body, cfg, queue=queue,
                                                  caller_ip=caller_ip)
                except ApiError as exc:
                    answer = {"error": exc.message}
                out.append(answer)
        finally:
            self._dedup_batch = None
        return out

    def _parse_item(self, index: int, item: Any) -> tuple[Any, ...]:
        """A batch item read the full way:
        (False, destination, body, config, queue, explicit dedup key)."""
        if not isinstance(item, dict) or not isinstance(item.get("destination"), str):
            raise ApiError(400, f"batch item {index}: 'destination' (string) is required")
        headers = item.get("headers") or {}
        if not isinstance(headers, dict):
            raise ApiError(400, f"batch item {index}: 'headers' must be an object")
        raw_body = item.get("body")
        if raw_body is None:
            body = b""
        elif isinstance(raw_body, str):
            body = raw_body.encode()
        else:  # a JSON value instead of a string: deliver its JSON text
            body = json.dumps(raw_body, separators=(",", ":")).encode()
        queue = item.get("queue")
        if queue is not None and not isinstance(queue, str):
            raise ApiError(400, f"batch item {index}: 'queue' must be a string")
        queue = queue or None
        try:
            cfg = parse_publish_config({k.lower(): str(v) for k, v in headers.items()})
        except BadValue as exc:
            raise ApiError(400, f"batch item {index}: {exc}") from None
        # (content-based keys are looked up singly)
        key = "id:" + cfg.dedup_id if cfg.dedup_id is not None else None
        return False, item["destination"], body, cfg, queue, key

    def _parse_fast(self, index: int, item: Any) -> tuple[Any, ...] | None:
        """A batch item of the usual shape read with a cached template:
        (True, destination, text, template, header, dedup key, queue), or None for the full
        path (which then gives the same answer the full path always gives)."""
        if item.__class__ is not dict:
            return None
        get = item.get
        destination = get("destination")
        if destination.__class__ is not str or not is_url(destination):
            return None
        headers = get("headers") or {}
        text = get("body")
        queue = get("queue")
        if queue is not None:
            if queue.__class__ is not str:
                return None
            queue = queue or None
            if queue is not None and queue not in self.queues:
                return None  # the full path validates and creates it
        if headers.__class__ is not dict or (text is not None and text.__class__ is not str):
            return None
        plan = self._templates.plan(tuple(headers))
        if plan is None:
            return None
        values = tuple(headers.values())
        dedup_key: str | None = None
        if plan.dedup is not None:
            raw = values[plan.dedup]
            if raw.__class__ is not str:
                return None
            if raw.strip():  # empty = not given
                if ":" in raw:
                    raise ApiError(400, f"batch item {index}: DeduplicationId cannot contain ':'")
                dedup_key = "id:" + raw
        template = plan.template_for(values)
        if template is None:
            return None
        if template.error is not None:
            raise ApiError(400, f"batch item {index}: {template.error}")
        if not template.fast:
            return None
        if text is None:
            text = ""
        elif len(text) > self._utf8_safe and len(text.encode()) > self.limits.max_message_bytes:
            return None  # the full path answers 412
        header: dict[str, list[str]] = {}
        for i, name in plan.forward:
            value = values[i]
            if value.__class__ is not str:
                value = str(value)
            if value.strip():
                header[name] = [value]
        if template.content_type is not None:
            header["Content-Type"] = [template.content_type]
        return True, destination, text, template, header, dedup_key, queue

    def _accept_fast(self, entry: tuple[Any, ...], caller_ip: str | None, now: int) -> Any:
        """Accept one fast-path batch item: what ``accept`` does for it, without building a
        config or a ``Message`` (accept-only: the stored record is all there is)."""
        _fast, url, text, template, header, dedup_key, queue = entry
        if dedup_key is not None:
            hit = self._dedup_batch.get(dedup_key)  # type: ignore[union-attr]
            if hit is not None and hit[1] > now:
                return _mark_deduplicated(hit[0])
        self._seq = seq = self._seq + 1
        message_id = f"msg_{self._id_prefix}{seq:010x}"
        # exactly what Message.to_record() gives for this message (see _new_message)
        record: dict[str, Any] = {
            "id": message_id, "url": url, "seq": seq, "created_at": now, "next_at": now,
            "text": text,
        }
        if header:
            record["header"] = header
        if template.delay_ms:
            not_before = record["not_before"] = now + template.delay_ms
            record["next_at"] = max(now, not_before)
        if queue is not None:
            record["queue"] = queue
            self.queues[queue].backlog += 1
        if caller_ip is not None:
            record["caller_ip"] = caller_ip
        if dedup_key is not None:
            record["dedup_key"] = dedup_key
        if template.fields:
            record.update(template.fields)
        data = orjson.dumps(record)
        self.store.put_message(seq, message_id, queue, data)
        self._log_seq += 1
        self.logs.append((self._log_seq, now, data, "CREATED", _NO_EXTRA))
        answer = {"messageId": message_id}
        if dedup_key is not None:
            expires = now + DEDUP_WINDOW_MS
            self._dedup_batch[dedup_key] = (answer, expires)  # type: ignore[index]
            self.store.put_dedup(dedup_key, (expires, message_id, None))
        return answer

    # ------------------------------------------------------------------ messages API
    def _find(self, message_id: str) -> Message | None:
        if not self.stored_only:
            return self.messages.get(message_id)
        seq = _seq_of(message_id)
        data = None if seq is None else self.store.get_message(seq)
        if data is None or data.get("id") != message_id:
            return None
        return Message.from_record(data)

    def get_message(self, message_id: str) -> dict[str, Any]:
        msg = self._find(message_id)
        if msg is None:
            raise ApiError(404, f"message {message_id} not found")
        return msg.to_api()

    def retry_now(self, message_id: str) -> None:
        """Release a delayed or backing-off message for immediate delivery."""
        msg = self.messages.get(message_id)
        now = now_ms()
        if msg is not None and msg.queue is not None and msg.kind == "message":
            raise ApiError(400, f"message {message_id} is in queue {msg.queue}; queued messages "
                                "are delivered in order and cannot be released early")
        if msg is None or msg.state in ("ACTIVE", *FINAL_STATES) or msg.next_at <= now:
            raise ApiError(404, f"message {message_id} is not waiting for delivery")
        msg.next_at = now
        self._save(msg)
        self._schedule(msg)

    def cancel(self, message_id: str) -> None:
        msg = self._find(message_id)
        if msg is None:
            raise ApiError(404, f"message {message_id} not found")
        self._cancel(msg)

    def _cancel(self, msg: Message) -> None:
        self._log(msg, "CANCEL_REQUESTED")
        if self.stored_only:
            msg.state = "CANCELED"
            self.store.delete_message(msg.seq)
            self._log(msg, "CANCELED")
            q = self.queues.get(msg.queue) if msg.queue and msg.kind == "message" else None
            if q is not None:
                q.backlog = max(0, q.backlog - 1)
            return
        if self.dispatcher is not None and msg.id in self.dispatcher.inflight:
            self.cancelling.add(msg.id)
            return
        self._finish(msg, "CANCELED")

    def cancel_many(self, ids: list[str] | None, predicate: Callable[[dict[str, Any]], bool] | None,
                    count: int | None) -> int:
        if self.stored_only:
            if ids:
                found = (self._find(i) for i in dict.fromkeys(ids))
                targets = [m for m in found if m is not None]
            else:
                targets = [m for m in map(Message.from_record, self.store.load_messages())
                           if predicate is None or predicate(m.to_api())]
        elif ids:
            targets = [self.messages[i] for i in ids if i in self.messages]
        else:
            targets = [m for m in self.messages.values() if predicate is None or predicate(m.to_api())]
        if count is not None:
            targets = targets[:count]
        for msg in targets:
            self._cancel(msg)
        return len(targets)

    # ------------------------------------------------------------------ queues API
    def _check_queue_capacity(self) -> None:
        if len(self.queues) >= self.limits.max_queues:
            raise ApiError(
                412,
                f"queue limit of {self.limits.max_queues} reached on the {self.limits.name} plan; "
                "delete a queue first",
            )

    def _create_queue(self, name: str, parallelism: int, paused: bool, now: int) -> Queue:
        q = Queue(name=name, created_at=now, updated_at=now, parallelism=parallelism, paused=paused)
        self.queues[name] = q
        self.store.put("queue", name, q.to_record())
        return q

    def upsert_queue(self, name: str, parallelism: int, paused: bool | None) -> None:
        validate_name("queue", name)
        if parallelism < 1:
            raise ApiError(400, "parallelism must be at least 1")
        if parallelism > self.limits.max_queue_parallelism:
            raise ApiError(
                412,
                f"queue parallelism {parallelism} exceeds the {self.limits.name} plan's maximum "
                f"of {self.limits.max_queue_parallelism}",
            )
        now = now_ms()
        q = self.queues.get(name)
        if q is None:
            self._check_queue_capacity()
            q = self._create_queue(name, parallelism, bool(paused), now)
        else:
            q.parallelism = parallelism
            if paused is not None:
                q.paused = paused
            q.updated_at = now
            self.store.put("queue", name, q.to_record())
        if not q.paused:
            self._resume_parked(q)
            self._pump_queue(q)

    def get_queue(self, name: str) -> Queue:
        q = self.queues.get(name)
        if q is None:
            raise ApiError(404, f"queue {name} not found")
        return q

    def delete_queue(self, name: str) -> None:
        q = self.get_queue(name)
        if self.stored_only and q.backlog:  # its stored messages go with it (cancelled)
            self.store.delete_queue_messages(name)
        for mid in [*q.pending, *q.holding, *q.parked]:
            msg = self.messages.get(mid)
            if msg is not None and msg.kind == "message":
                self._cancel(msg)
        del self.queues[name]
        self.store.delete("queue", name)

    def pause_queue(self, name: str, paused: bool) -> None:
        q = self.get_queue(name)
        q.paused = paused
        q.updated_at = now_ms()
        self.store.put("queue", name, q.to_record())
        if not paused:
            self._resume_parked(q)
            self._pump_queue(q)

    def _resume_parked(self, q: Queue) -> None:
        parked, q.parked = q.parked, []
        for mid in parked:
            msg = self.messages.get(mid)
            if msg is not None:
                self._schedule(msg)

    def _pump_queue(self, q: Queue) -> None:
        if self.settings.accept_only:
            return
        while not q.paused and q.pending and len(q.holding) < q.parallelism:
            mid = q.pending.popleft()
            msg = self.messages.get(mid)
            if msg is None:
                continue
            q.holding.add(mid)
            self._schedule(msg)

    def _release_slot(self, msg: Message) -> None:
        name = msg.slot_queue or (msg.queue if msg.kind == "message" else None)
        if name is None:
            return
        q = self.queues.get(name)
        if q is None:
            return
        if msg.id in q.pending:
            q.pending.remove(msg.id)
        if msg.id in q.parked:
            q.parked.remove(msg.id)
        if msg.id in q.holding:
            q.holding.discard(msg.id)
            self._pump_queue(q)

    # ------------------------------------------------------------------ URL groups API
    def upsert_endpoints(self, name: str, endpoints: list[dict[str, str]]) -> None:
        validate_name("url group", name)
        for ep in endpoints:
            if not isinstance(ep, dict) or not is_url(str(ep.get("url", ""))):
                raise ApiError(400, "every endpoint needs a 'url' that is an http(s) URL")
        now = now_ms()
        group = self.groups.get(name)
        if group is None:
            if len(self.groups) >= self.limits.max_url_groups:
                raise ApiError(
                    412,
                    f"url group limit of {self.limits.max_url_groups} reached on the "
                    f"{self.limits.name} plan",
                )
            group = UrlGroup(name, now, now)
        group.upsert(endpoints, now)
        if len(group.endpoints) > self.limits.max_endpoints_per_group:
            raise ApiError(
                412,
                f"a url group can hold at most {self.limits.max_endpoints_per_group} endpoints on "
                f"the {self.limits.name} plan",
            )
        self.groups[name] = group
        self.store.put("group", name, group.to_record())

    def remove_endpoints(self, name: str, endpoints: list[dict[str, str]]) -> None:
        group = self.groups.get(name)
        if group is None:
            raise ApiError(404, f"url group {name} not found")
        group.remove(endpoints, now_ms())
        if group.endpoints:
            self.store.put("group", name, group.to_record())
        else:
            del self.groups[name]
            self.store.delete("group", name)

    def get_group(self, name: str) -> UrlGroup:
        group = self.groups.get(name)
        if group is None:
            raise ApiError(404, f"url group {name} not found")
        return group

    def delete_group(self, name: str) -> None:
        self.get_group(name)
        del self.groups[name]
        self.store.delete("group", name)

    # ------------------------------------------------------------------ schedules API
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

    def expire_dedup(self) -> None:
        """Forget deduplication records older than the window."""
        now = now_ms()
        for key in [k for k, (_answer, expires) in self.dedup.items() if expires <= now]:
            del self.dedup[key]
            self.store.delete_dedup(key)

    def tick_schedules(self) -> None:
        now = now_ms()
        for sc in list(self.schedules.values()):
            if not sc.paused and sc.next_at <= now:
                self.fire_schedule(sc, now)

    # ------------------------------------------------------------------ DLQ API
    def dlq_list(self, predicate: Callable[[dict[str, Any]], bool], cursor: str | None,
                 count: int) -> tuple[list[dict[str, Any]], str | None]:
        keys = list(self.dlq)
        start = 0
        if cursor:
            start = next((i for i, k in enumerate(keys) if _dlq_sort_key(k) > _dlq_sort_key(cursor)),
                         len(keys))
        out: list[dict[str, Any]] = []
        last: str | None = None
        for key in keys[start:]:
            doc = dlq_to_api(self.dlq[key])
            if predicate(doc):
                out.append(doc)
                last = key
                if len(out) >= count:
                    break
        more = last is not None and keys.index(last) < len(keys) - 1 and len(out) >= count
        return out, (last if more else None)

    def dlq_get(self, dlq_id: str) -> dict[str, Any]:
        entry = self.dlq.get(dlq_id)
        if entry is None:
            raise ApiError(404, f"dlq message {dlq_id} not found")
        return entry

    def dlq_delete(self, dlq_id: str) -> None:
        self.dlq_get(dlq_id)
        del self.dlq[dlq_id]
        self.store.delete("dlq", dlq_id)

    def dlq_retry(self, dlq_id: str, overrides: Mapping[str, str]) -> dict[str, Any]:
        entry = self.dlq_get(dlq_id)
        old = Message.from_record(entry["message"])
        headers = _config_headers_of(old)
        headers.update({k: v for k, v in overrides.items()
                        if k.startswith("upstash-") or k == "content-type"})
        try:
            cfg = parse_publish_config(headers)
        except BadValue as exc:
            raise ApiError(400, str(exc)) from None
        _status, answer = self.accept(
            old.url, old.body, cfg, queue=old.queue, caller_ip=old.caller_ip,
            schedule_id=old.schedule_id,
        )
        self.dlq_delete(dlq_id)
        return dict(answer)

    # ------------------------------------------------------------------ logs API
    def list_logs(self, predicate: Callable[[dict[str, Any]], bool], cursor: str | None,
                  count: int, message_ids: set[str] | None = None,
                  ) -> tuple[list[dict[str, Any]], str | None]:
        """Log entries newest first; the cursor is the sequence number to continue below."""
        before = int(cursor) if cursor else None
        out: list[dict[str, Any]] = []
        last_seq: int | None = None
        for seq, at, logged, state, extra in reversed(self.logs):
            if before is not None and seq >= before:
                continue
            msg = Message.from_record(orjson.loads(logged)) if isinstance(logged, bytes) else logged
            if message_ids and msg.id not in message_ids:
                continue
            doc = build_log(msg, state, at, **extra)
            if predicate(doc):
                if len(out) >= count:
                    return out, str(last_seq)
                out.append(doc)
                last_seq = seq
        return out, None

    # ------------------------------------------------------------------ signing keys
    def rotate_keys(self) -> dict[str, str]:
        self.current_key, self.next_key = self.next_key, generate_signing_key()
        self.store.put("meta", "keys", {"current": self.current_key, "next": self.next_key})
        return {"current": self.current_key, "next": self.next_key}

    # ------------------------------------------------------------------ flow control
    def get_flow(self, key: str) -> FlowKey:
        fk = self.flow.get(key)
        if fk is None:
            raise ApiError(404, f"flow control key {key} not found")
        return fk

    def flow_pause(self, key: str, paused: bool) -> None:
        fk = self.get_flow(key)
        fk.paused = paused
        self.store.put("flow", key, fk.to_record())
        if not paused:
            self.pump_flow(key)

    def flow_pin(self, key: str, parallelism: int | None, rate: int | None,
                 period: int | None) -> None:
        fk = self.get_flow(key)
        if parallelism is not None:
            fk.parallelism_max, fk.pinned_parallelism = parallelism, True
        if rate is not None:
            fk.rate_max, fk.pinned_rate = rate, True
            fk.period = period or fk.period or 1
            fk.rate_count, fk.period_start = 0, time.time()
        self.store.put("flow", key, fk.to_record())
        self.pump_flow(key)

    def flow_unpin(self, key: str, parallelism: bool, rate: bool) -> None:
        fk = self.get_flow(key)
        if parallelism:
            fk.pinned_parallelism = False
        if rate:
            fk.pinned_rate = False
        self.store.put("flow", key, fk.to_record())
        self.pump_flow(key)

    def flow_reset_rate(self, key: str) -> None:
        fk = self.get_flow(key)
        fk.rate_count, fk.period_start = 0, time.time()
        self.pump_flow(key)

    def pump_flow(self, key: str) -> None:
        fk = self.flow.get(key)
        if fk is None or self.dispatcher is None:
            return
        now_s = time.time()
        while fk.waitlist and not fk.blocked(now_s):
            mid = fk.waitlist.popleft()
            msg = self.messages.get(mid)
            if msg is None:
                continue
            fk.acquire()
            self._start(msg)
        if fk.waitlist and not fk.paused and fk.rate_max and fk.rate_count >= fk.rate_max:
            self.dispatcher.call_later(fk.period_start + fk.period - now_s, self.pump_flow, key)

    # ------------------------------------------------------------------ workflow runs
    def trigger_workflow(
        self, url: str, body: bytes, headers: Mapping[str, str], caller_ip: str | None
    ) -> dict[str, Any]:
        """``POST /v2/trigger/{url}``: start a run (idempotent per run id)."""
        if not is_url(url):
            raise ApiError(400, f"invalid workflow url {url!r}: expected an http(s) URL")
        run_id = headers.get("upstash-workflow-runid") or self._new_id("")
        if not run_id.startswith("wfr_"):
            run_id = "wfr_" + run_id
        merged = dict(headers)
        merged["upstash-workflow-runid"] = run_id
        merged["upstash-workflow-init"] = "true"
        merged["upstash-workflow-url"] = url
        merged["upstash-forward-upstash-workflow-sdk-version"] = "1"
        merged.setdefault("upstash-feature-set", "LazyFetch,InitialBody,WF_DetectTrigger")
        try:
            cfg = parse_publish_config(merged)
        except BadValue as exc:
            raise ApiError(400, str(exc)) from None
        status, _answer = self.accept(url, body, cfg, caller_ip=caller_ip)
        out: dict[str, Any] = {
            "workflowRunId": run_id,
            "workflowCreatedAt": self.runs[run_id]["createdAt"],
        }
        if status == 202:
            out["deduplicated"] = True
        return out

    def finish_run(self, run_id: str, cancel: bool) -> None:
        run = self.runs.get(run_id)
        if run is None:
            raise ApiError(404, f"workflow run {run_id} not found")
        run["state"] = "RUN_CANCELED" if cancel else "RUN_SUCCESS"
        run["finishedAt"] = now_ms()
        self.store.put("run", run_id, run)
        if cancel:
            for msg in list(self.messages.values()):
                if msg.workflow_run_id == run_id:
                    self._cancel(msg)

    # ------------------------------------------------------------------ delivery
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

    def _workflow_body(self, run: dict[str, Any], msg: Message) -> bytes:
        is_init = msg.workflow.get("upstash-workflow-init", "").lower() == "true"
        if not is_init and not any(s["messageId"] == msg.id for s in run["steps"]):
            run["steps"].append({
                "messageId": msg.id,
                "body": base64.b64encode(msg.body).decode(),
                "callType": "step",
            })
            self.store.put("run", run["runId"], run)
        items = [{"messageId": run["initMessageId"], "body": run["initBody"], "callType": "step"}]
        items.extend(run["steps"])
        return json.dumps(items).encode()

    def attempt_done(self, msg: Message, result: AttemptResult) -> None:
        """Record one attempt's outcome: delivered, retry later, or failed to the DLQ."""
        if msg.flow_key and (fk := self.flow.get(msg.flow_key)) is not None:
            fk.active = max(0, fk.active - 1)
            self.pump_flow(fk.key)
        if msg.id not in self.messages:
            return
        resp_headers = {k: [v] for k, v in result.headers.items()}
        resp_body_b64 = base64.b64encode(result.body).decode()
        if msg.id in self.cancelling:
            self.cancelling.discard(msg.id)
            self._finish(msg, "CANCELED")
            return
        status = result.status
        delivered = status is not None and 200 <= status < 300
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


def _dedup_row(answer: Any, expires: int) -> DedupRow:
    """How a dedup record is stored: a single message's answer as just its id."""
    if isinstance(answer, dict) and len(answer) == 1 and "messageId" in answer:
        return expires, answer["messageId"], None
    return expires, None, orjson.dumps(answer).decode()


def _dedup_hit(row: DedupRow) -> tuple[Any, int]:
    """A stored dedup record as (the original answer, when it expires)."""
    expires, message_id, answer = row
    return ({"messageId": message_id} if answer is None else orjson.loads(answer)), expires


def _seq_of(message_id: str) -> int | None:
    """The sequence number a message id carries (see ``Broker._message_id``)."""
    if not message_id.startswith("msg_") or len(message_id) < 30:
        return None
    try:
        return int(message_id[20:], 16)
    except ValueError:
        return None


def _mark_deduplicated(answer: Any) -> Any:
    if isinstance(answer, list):
        return [{**item, "deduplicated": True} for item in answer]
    return {**answer, "deduplicated": True}


def _dlq_sort_key(dlq_id: str) -> tuple[int, int]:
    head, _, tail = dlq_id.partition("-")
    try:
        return int(head), int(tail or 0)
    except ValueError:
        return 0, 0


def _config_headers_of(msg: Message) -> dict[str, str]:
    """The publish headers that would recreate ``msg`` (for DLQ retry)."""
    headers: dict[str, str] = {}
    for name, values in msg.header.items():
        if name.lower() == "content-type":
            headers["content-type"] = ",".join(values)
        else:
            headers["upstash-forward-" + name.lower()] = ",".join(values)
    headers["upstash-method"] = msg.method
    headers["upstash-retries"] = str(msg.max_retries)
    if msg.retry_delay_expr:
        headers["upstash-retry-delay"] = msg.retry_delay_expr
    if msg.timeout_s is not None:
        headers["upstash-timeout"] = f"{msg.timeout_s}s"
    if msg.callback:
        headers["upstash-callback"] = msg.callback
    for k, v in msg.callback_cfg.items():
        headers["upstash-callback-" + k] = v
    if msg.failure_callback:
        headers["upstash-failure-callback"] = msg.failure_callback
    for k, v in msg.failure_callback_cfg.items():
        headers["upstash-failure-callback-" + k] = v
    if msg.label:
        headers["upstash-label"] = msg.label
    if msg.redact:
        headers["upstash-redact-fields"] = msg.redact
    if msg.flow_key:
        headers["upstash-flow-control-key"] = msg.flow_key
        parts = []
        if msg.flow_parallelism is not None:
            parts.append(f"parallelism={msg.flow_parallelism}")
        if msg.flow_rate is not None:
            parts.append(f"rate={msg.flow_rate}")
        if msg.flow_period is not None:
            parts.append(f"period={msg.flow_period}s")
        headers["upstash-flow-control-value"] = ", ".join(parts)
    return headers
