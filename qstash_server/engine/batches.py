"""Batches: ``POST /v2/batch``, each item accepted as a publish would be, with a fast path for
items of the usual shape on an accept-only, unlimited server (same answers and stored rows)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from qstash_server.engine.publish_config import is_url, parse_publish_config
from qstash_server.engine.publishing import PublishingOps
from qstash_server.engine.state import DEDUP_WINDOW_MS, NO_EXTRA, _dedup_hit, _mark_deduplicated
from qstash_server.engine.timing import BadValue, now_ms
from qstash_server.problems import ApiError

__all__ = ["BatchOps"]


class BatchOps(PublishingOps):
    """Accepting a batch of messages."""

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
        self.logs.append((self._log_seq, now, data, "CREATED", NO_EXTRA))
        answer = {"messageId": message_id}
        if dedup_key is not None:
            expires = now + DEDUP_WINDOW_MS
            self._dedup_batch[dedup_key] = (answer, expires)  # type: ignore[index]
            self.store.put_dedup(dedup_key, (expires, message_id, None))
        return answer
