"""What a destination is: the configuration models of the sinks (one per ``kind``).

These are the connectors' own settings, validated once at the edge like the rest of
``bridge.yaml`` (the bridge's :class:`~migrator.bridge.config.Route` holds a list of them): the
QStash kinds (``publish-url``, ``publish-url-group``, ``enqueue-queue``, ``workflow``) with the
``Upstash-*`` settings every published message carries, and ``direct-http``. A new destination
kind is a model here, a sink module beside the others, and one branch in
:func:`migrator.bridge.routes.build_routes`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DESTINATION_KINDS",
    "Destination",
    "DirectHttpDestination",
    "EnqueueQueueDestination",
    "FlowControl",
    "HttpStatus",
    "PublishUrlDestination",
    "PublishUrlGroupDestination",
    "QStashDestination",
    "Url",
    "WorkflowDestination",
    "check_duration",
    "check_url",
]

HttpStatus = Annotated[int, Field(ge=100, le=599)]
_DURATION = re.compile(r"^(\d+d)?(\d+h)?(\d+m)?(\d+s)?$")
_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
_URL = re.compile(r"^https?://\S+$")

Duration = Annotated[
    str,
    Field(
        description="QStash duration: <n>d<n>h<n>m<n>s, any subset in that order, e.g. 30s, 1h30m.",
        examples=["30s", "1h30m"],
    ),
]


def check_duration(value: str | None) -> str | None:
    if value is not None and (not value or not _DURATION.match(value)):
        raise ValueError(f"{value!r} is not a duration; write it like 30s, 5m, 2h or 1d10h30m")
    return value


def check_url(value: str) -> str:
    if not _URL.match(value):
        raise ValueError(f"{value!r} is not an http(s) URL; write it like https://example.com/hook")
    return value


Url = Annotated[str, AfterValidator(check_url)]


_REPLACES = ("The Kafka consumer group this destination replaces: the bridge delivers to it only "
             "while `migrator cutover` has switched that group (docs/cutover.md).")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FlowControl(_Frozen):
    """QStash flow control: limits per key, applied at the far end (Upstash-Flow-Control-*)."""

    key: str = Field(
        description="Key template; {topic}, {partition} and {key} are replaced per record.",
        examples=["{topic}-{partition}", "{key}"],
    )
    rate: int | None = Field(None, gt=0, description="Max calls per period.")
    parallelism: int | None = Field(None, gt=0, description="Max calls in flight.")
    period: str | None = Field(None, description="Rate period, e.g. 1s, 1m (default 1s).")

    @field_validator("period")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        return check_duration(value)

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        unknown = set(re.findall(r"\{([^}]*)\}", value)) - {"topic", "partition", "key"}
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {sorted(unknown)}; use {{topic}}, {{partition}} or {{key}}"
            )
        return value

    def header_value(self) -> str | None:
        parts = [
            f"{name}={value}"
            for name, value in (
                ("parallelism", self.parallelism),
                ("rate", self.rate),
                ("period", self.period),
            )
            if value is not None
        ]
        return ", ".join(parts) or None


class _QStashOptions(_Frozen):
    """Per-destination QStash message settings (headers on every published message)."""

    retries: int | None = Field(None, ge=0, description="Upstash-Retries.")
    retry_delay: str | None = Field(
        None, description="Upstash-Retry-Delay: a math expression in ms over `retried`."
    )
    timeout: str | None = Field(None, description="Upstash-Timeout duration, e.g. 30s.")
    delay: str | None = Field(None, description="Upstash-Delay duration, e.g. 10s.")
    callback: str | None = Field(None, description="Upstash-Callback URL.")
    failure_callback: str | None = Field(None, description="Upstash-Failure-Callback URL.")
    flow_control: FlowControl | None = None
    label: str | None = Field(None, description="Upstash-Label.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra headers delivered to the endpoint."
    )
    replaces_group: str | None = Field(None, description=_REPLACES)
    dedup_id_header: str | None = Field(
        None, description="Take Upstash-Deduplication-Id from this record header (the "
        "application's event id, e.g. event-id) instead of the record's coordinates, so an "
        "event both bridged and published directly is delivered once within QStash's window; "
        "records without the header keep the coordinate id (docs/verify.md#producers).")

    @field_validator("timeout", "delay")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        return check_duration(value)

    @field_validator("callback", "failure_callback")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)


class PublishUrlDestination(_QStashOptions):
    """Publish each record to one URL through QStash."""

    kind: Literal["publish-url"]
    url: Url


class PublishUrlGroupDestination(_QStashOptions):
    """Publish each record to every endpoint of a QStash URL group."""

    kind: Literal["publish-url-group"]
    url_group: str

    @field_validator("url_group")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("URL-group names may only hold letters, digits, '-', '_' and '.'")
        return value


class EnqueueQueueDestination(_QStashOptions):
    """Enqueue each record into a QStash FIFO queue delivering to ``url`` (keeps order)."""

    kind: Literal["enqueue-queue"]
    queue: str = Field(
        description="Queue name; {topic} and {partition} are replaced per record, {index} by "
        "the partition modulo `queues` (several partitions sharing a queue).",
        examples=["orders-{partition}", "orders-{index}"],
    )
    queues: int | None = Field(
        None, ge=1,
        description="With {index} in `queue`: partition p goes to queue p mod `queues` (each "
        "partition to exactly one queue, so its order holds; partitions share a queue when "
        "there are fewer queues than partitions).",
    )
    url: Url

    @model_validator(mode="after")
    def _no_delay(self) -> EnqueueQueueDestination:
        if self.delay is not None:
            raise ValueError("QStash queues do not support delay; remove `delay` from this route")
        return self

    @model_validator(mode="after")
    def _queue_template(self) -> EnqueueQueueDestination:
        fields = set(re.findall(r"\{([^}]*)\}", self.queue))
        unknown = fields - {"topic", "partition", "index"}
        if unknown:
            raise ValueError(f"queue: unknown placeholder(s) {sorted(unknown)}; use {{topic}}, "
                             "{partition} or {index}")
        if "index" in fields and self.queues is None:
            raise ValueError("queue: {index} needs `queues: N` (partition p goes to queue p mod N)")
        if self.queues is not None and "index" not in fields:
            raise ValueError("queues: N is only used with {index} in `queue`, e.g. orders-{index}")
        literal = re.sub(r"\{[^}]*\}", "0", self.queue)
        if not _NAME.match(literal):
            raise ValueError(f"queue {self.queue!r}: queue names may only hold letters, digits, "
                             "'-', '_' and '.'")
        return self

    def queue_name(self, topic: str, partition: int) -> str:
        """The queue a record of ``topic``/``partition`` is enqueued into."""
        return self.queue.format(topic=topic, partition=partition,
                                 index=partition % (self.queues or 1))


class WorkflowDestination(_QStashOptions):
    """Start one Upstash Workflow run per record (through QStash, with a deterministic run id)."""

    kind: Literal["workflow"]
    url: Url = Field(description="The workflow endpoint URL.")


class DirectHttpDestination(_Frozen):
    """POST each record straight to the endpoint, without QStash (at least once)."""

    kind: Literal["direct-http"]
    url: Url
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    timeout: float = Field(10.0, gt=0, description="Per-request timeout in seconds.")
    headers: dict[str, str] = Field(default_factory=dict)
    success_on: tuple[HttpStatus, ...] = Field(
        (), description="Statuses that also count as delivered (e.g. 409 from an endpoint "
        "that answers a duplicate Idempotency-Key with Conflict).")
    retry_on: tuple[HttpStatus, ...] = Field(
        (), description="Statuses retried besides 408, 425, 429 and 5xx (e.g. 404 while the "
        "endpoint is being deployed).")
    fail_on: tuple[HttpStatus, ...] = Field(
        (), description="Statuses dead-lettered at once, never retried, even 429 or 5xx (e.g. "
        "501).")
    replaces_group: str | None = Field(None, description=_REPLACES)

    @model_validator(mode="after")
    def _statuses_once(self) -> DirectHttpDestination:
        seen: dict[int, str] = {}
        for name in ("success_on", "retry_on", "fail_on"):
            for status in getattr(self, name):
                if status in seen and seen[status] != name:
                    raise ValueError(
                        f"status {status} is in both {seen[status]} and {name}; keep it in one"
                    )
                seen[status] = name
        return self


Destination = Annotated[
    PublishUrlDestination
    | PublishUrlGroupDestination
    | EnqueueQueueDestination
    | WorkflowDestination
    | DirectHttpDestination,
    Field(discriminator="kind"),
]

QStashDestination = (
    PublishUrlDestination | PublishUrlGroupDestination | EnqueueQueueDestination | WorkflowDestination
)

# The discriminator tags pydantic inserts into the locations of the destination union.
DESTINATION_KINDS = frozenset(
    {"publish-url", "publish-url-group", "enqueue-queue", "workflow", "direct-http"}
)
