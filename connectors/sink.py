"""The sink contract: a batch of messages in, one result per message out.

``Sink.write_batch(messages)`` returns a list aligned with ``messages``: ``None`` for a message
the destination accepted, or a :class:`~migrator.errors.DeliveryError` for one it did not,
either :class:`~migrator.errors.RetryableDeliveryError` (try again, maybe after
``retry_after`` seconds) or :class:`~migrator.errors.PermanentDeliveryError` (dead-letter it).
A sink never raises for a delivery problem; it raises only for bugs. It may be called from
several threads at once, so it holds no per-call state.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from migrator.errors import DeliveryError

__all__ = [
    "DeliveryResult",
    "Message",
    "Record",
    "Sink",
    "Ticket",
    "dedup_id",
    "dedup_prefix",
    "forward_headers",
    "header_text",
    "route_tag",
]


@dataclass(slots=True)
class Record:
    """One Kafka record as the bridge sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp: int | None  # ms since epoch, None when the broker gave none


class Ticket(Protocol):
    """Who a message answers to: the source's handle on the record's partition (the bridge's
    per-partition checkpoint), acknowledged once per destination outcome."""

    def ack(self, offset: int) -> None:
        """One outcome of the record at ``offset`` arrived."""
        ...


class Message:
    """One record bound for one destination: the body to send and delivery bookkeeping.

    A plain slotted class rather than a dataclass: the bridge makes one per record and
    destination, and a hand-written ``__init__`` is the cheapest way to also set ``size``.
    """

    __slots__ = ("attempts", "body", "content_type", "dedup_id", "extra", "first_sent", "outages",
                 "record", "size", "ticket")

    def __init__(
        self,
        record: Record,
        body: bytes,
        content_type: str,
        dedup_id: str,
        attempts: int = 0,
        first_sent: float = 0.0,
        extra: dict[str, str] | None = None,
        ticket: Ticket | None = None,
    ) -> None:
        self.record = record
        self.body = body
        self.content_type = content_type
        self.dedup_id = dedup_id
        self.attempts = attempts
        self.first_sent = first_sent  # monotonic time the record was polled
        self.extra = extra  # per-message headers (None: none)
        self.ticket = ticket  # the checkpoint handle for the record's partition
        self.size = len(body) + 200  # bytes held while in flight (body + header overhead)
        self.outages = 0  # attempts that failed for the whole destination (not counted)

    def __repr__(self) -> str:
        r = self.record
        return f"Message({r.topic}[{r.partition}]@{r.offset} -> {self.dedup_id})"


DeliveryResult = DeliveryError | None


class Sink(Protocol):
    """Delivers batches to one destination. Thread-safe; never raises for delivery failures."""

    name: str
    """Route/destination label used in metrics and dead letters."""

    def write_batch(self, messages: Sequence[Message]) -> list[DeliveryResult]:
        """Deliver ``messages``; one result per message, aligned with the input."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def header_text(value: bytes | None) -> tuple[str, bool]:
    """A header-safe rendering of ``value``: (text, was_base64). Printable ASCII passes as is;
    anything else (UTF-8 beyond ASCII, binary, control characters) is base64."""
    if value is None:
        return "", False
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii"), True
    if text.isascii() and text.isprintable() and text.strip() == text:
        return text, False
    return base64.b64encode(value).decode("ascii"), True


_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._-]")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9-]")


def route_tag(route: str, destination: str) -> str:
    """A fixed-width tag naming one route's destination inside dedup ids (10 hex digits)."""
    return hashlib.sha256(f"{route}\0{destination}".encode()).hexdigest()[:10]


def dedup_id(tag: str, topic: str, partition: int, offset: int) -> str:
    """``kb-<tag>-<topic>-<partition>-<offset>``: unique per record and destination.

    Only letters, digits, ``-``, ``_`` and ``.`` (QStash rejects ``:`` and other characters; Kafka
    topic names already use only these). The tag is fixed-width and partition/offset are
    digits, so the id reads back unambiguously.
    """
    return f"{dedup_prefix(tag, topic)}{partition}-{offset}"


def dedup_prefix(tag: str, topic: str) -> str:
    """The constant part of :func:`dedup_id` for one destination and topic."""
    return f"kb-{tag}-{_UNSAFE_ID.sub('_', topic)}-"


_BASE_NAMES = (
    "Kafka-Topic", "Kafka-Partition", "Kafka-Offset", "Kafka-Timestamp", "Kafka-Key",
    "Kafka-Key-Encoding",
)
_NAMES: dict[str, tuple[str, ...]] = {}


def forward_headers(record: Record, into: dict[str, str], prefix: str) -> None:
    """Put the record's coordinates, key and headers into ``into`` as ``<prefix>Kafka-*``.

    Values that are not printable UTF-8 are base64 with a ``...-Encoding: base64`` companion.
    Kafka header names are reduced to HTTP token characters (others become ``-``).
    """
    names = _NAMES.get(prefix)
    if names is None:
        names = _NAMES[prefix] = tuple(prefix + n for n in _BASE_NAMES)
    into[names[0]] = record.topic
    into[names[1]] = str(record.partition)
    into[names[2]] = str(record.offset)
    if record.timestamp is not None:
        into[names[3]] = str(record.timestamp)
    if record.key is not None:
        text, b64 = header_text(record.key)
        into[names[4]] = text
        if b64:
            into[names[5]] = "base64"
    for name, value in record.headers:
        safe = _UNSAFE_NAME.sub("-", name)
        text, b64 = header_text(value)
        into[f"{prefix}Kafka-Header-{safe}"] = text
        if b64:
            into[f"{prefix}Kafka-Header-{safe}-Encoding"] = "base64"
