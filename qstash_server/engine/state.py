"""The engine's shared state: what every resource module uses (the ``Broker`` loads it)."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from qstash_server.engine.group_commit import GroupCommitter
from qstash_server.engine.log_ring import LogRing
from qstash_server.engine.store import Store
from qstash_server.engine.store_schema import DedupRow
from qstash_server.engine.timing import now_ms
from qstash_server.problems import ApiError
from qstash_server.settings import ServerSettings

if TYPE_CHECKING:  # the resource modules build on this one; it only names their types
    from qstash_server.engine.dispatcher import Dispatcher
    from qstash_server.engine.flow_control import FlowKey
    from qstash_server.engine.messages import Message
    from qstash_server.engine.publish_config import PublishConfig
    from qstash_server.engine.queues import Queue
    from qstash_server.engine.schedules import Schedule
    from qstash_server.engine.templates import TemplateCache
    from qstash_server.engine.url_groups import UrlGroup

__all__ = [
    "DEDUP_WINDOW_MS",
    "FINAL_STATES",
    "NO_EXTRA",
    "AttemptResult",
    "BrokerState",
    "OutgoingRequest",
]


DEDUP_WINDOW_MS = 10 * 60 * 1000
# entries (a delivered message logs 3): verify's 100k-record benchmark reads them all
LOG_CAPACITY = 1_000_000
# accept-only keeps nothing per message in memory but this many recent log entries
STORED_LOG_CAPACITY = 1_000
FINAL_STATES = frozenset({"DELIVERED", "FAILED", "CANCELED"})
NO_EXTRA: dict[str, Any] = {}  # a log entry without extra fields (never modified)


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


class BrokerState:
    """QStash's state (in memory, written through to SQLite) and the helpers every concept uses."""

    # batch items of the usual shape: parsed configuration by header names and values (made
    # by the Broker: the template cache builds on the message record, which builds on this)
    _templates: TemplateCache

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
        self.logs = LogRing(STORED_LOG_CAPACITY if self.stored_only else LOG_CAPACITY)
        # accept-only: dedup records of the batch being accepted (one SQLite read per batch):
        # key -> (answer, expires)
        self._dedup_batch: dict[str, tuple[Any, int]] | None = None
        self._log_seq = 0
        # a str body this long or shorter is within the size limit whatever its characters
        self._utf8_safe = self.limits.max_message_bytes // 4
        self.fast_batch = True  # tests turn it off to compare with the full path
        self._load()

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

    if TYPE_CHECKING:
        # defined by the concept classes Broker combines; declared here for the type checker
        def _load(self) -> None: ...
        def _cancel(self, msg: Message) -> None: ...
        def _check_queue_capacity(self) -> None: ...
        def _create_queue(self, name: str, parallelism: int, paused: bool, now: int) -> Queue: ...
        def _finish(self, msg: Message, state: str, *, result: AttemptResult | None = None) -> None: ...
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
        ) -> Message: ...
        def _pump_queue(self, q: Queue) -> None: ...
        def dispatch_due(self, msg: Message) -> None: ...
        def _release_slot(self, msg: Message) -> None: ...
        def _start(self, msg: Message) -> None: ...
        def _workflow_body(self, run: dict[str, Any], msg: Message) -> bytes: ...
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
        ) -> tuple[int, Any]: ...
        def pump_flow(self, key: str) -> None: ...


def _dedup_row(answer: Any, expires: int) -> DedupRow:
    """How a dedup record is stored: a single message's answer as just its id."""
    if isinstance(answer, dict) and len(answer) == 1 and "messageId" in answer:
        return expires, answer["messageId"], None
    return expires, None, orjson.dumps(answer).decode()


def _dedup_hit(row: DedupRow) -> tuple[Any, int]:
    """A stored dedup record as (the original answer, when it expires)."""
    expires, message_id, answer = row
    return ({"messageId": message_id} if answer is None else orjson.loads(answer)), expires


def _dlq_sort_key(dlq_id: str) -> tuple[int, int]:
    head, _, tail = dlq_id.partition("-")
    try:
        return int(head), int(tail or 0)
    except ValueError:
        return 0, 0


def _mark_deduplicated(answer: Any) -> Any:
    if isinstance(answer, list):
        return [{**item, "deduplicated": True} for item in answer]
    return {**answer, "deduplicated": True}
