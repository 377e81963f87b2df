"""``bridge.yaml``: the bridge's configuration, validated once into a frozen model.

:func:`load_bridge_config` reads YAML or JSON and turns every validation error into a
:class:`~migrator.errors.ConfigError` naming the file, the line and the field path, e.g.
``bridge.yaml:14: routes[0].destinations[1].retries: Input should be a valid integer``.
``BridgeConfig.model_json_schema()`` is what ``migrator bridge schema`` prints.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from migrator.config import KafkaConnection
from migrator.errors import ConfigError
from migrator.yamlfile import load_model

__all__ = [
    "BatchPolicy",
    "BridgeConfig",
    "DeadLetterPolicy",
    "Destination",
    "DirectHttpDestination",
    "EnqueueQueueDestination",
    "FlowControl",
    "InFlightLimits",
    "KafkaSection",
    "PayloadPolicy",
    "PublishUrlDestination",
    "PublishUrlGroupDestination",
    "QStashSection",
    "RetryPolicy",
    "Route",
    "WorkflowDestination",
    "load_bridge_config",
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


def _check_duration(value: str | None) -> str | None:
    if value is not None and (not value or not _DURATION.match(value)):
        raise ValueError(f"{value!r} is not a duration; write it like 30s, 5m, 2h or 1d10h30m")
    return value


def _check_url(value: str) -> str:
    if not _URL.match(value):
        raise ValueError(f"{value!r} is not an http(s) URL; write it like https://example.com/hook")
    return value


Url = Annotated[str, AfterValidator(_check_url)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_REPLACES = ("The Kafka consumer group this destination replaces: the bridge delivers to it only "
             "while `migrator cutover` has switched that group (docs/cutover.md).")


class KafkaSection(_Frozen):
    """How to reach Kafka, as in ``migrator audit``: servers, a properties file, options."""

    bootstrap_servers: str | None = Field(
        None, description="Comma-separated host:port list (or KAFKA_BOOTSTRAP_SERVERS)."
    )
    properties_file: str | None = Field(
        None, description="Java client properties file (relative to the config file)."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    options: dict[str, str] = Field(
        default_factory=dict, description="librdkafka/Java properties, like -X key=value."
    )

    def connection(
        self,
        *,
        base_dir: Path | None = None,
        properties_file: str | Path | None = None,
        x_options: Sequence[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> KafkaConnection:
        """The validated connection; CLI flags (``properties_file``, ``x_options``) win."""
        env = os.environ if environ is None else environ
        file: str | Path | None = properties_file  # a flag: relative to the working directory
        if file is None and self.properties_file is not None:
            file = self.properties_file  # in the config: relative to the config file
            if base_dir is not None and not Path(file).is_absolute():
                file = base_dir / file
        props: dict[str, str] = {}
        if env.get("KAFKA_BOOTSTRAP_SERVERS"):
            props["bootstrap.servers"] = env["KAFKA_BOOTSTRAP_SERVERS"]
        if file is not None:
            from migrator.config import parse_properties

            props.update(parse_properties(Path(file)))
        if self.bootstrap_servers:
            props["bootstrap.servers"] = self.bootstrap_servers
        for key, value in (
            ("security.protocol", self.security_protocol),
            ("sasl.mechanism", self.sasl_mechanism),
            ("sasl.username", self.sasl_username),
        ):
            if value is not None:
                props[key] = value
        if self.sasl_password is not None:
            props["sasl.password"] = self.sasl_password.get_secret_value()
        props.update(self.options)
        from migrator.config import parse_x_options

        props.update(parse_x_options(x_options))
        return KafkaConnection.from_properties(props, where=str(file or "bridge config"))


class QStashSection(_Frozen):
    """Where QStash lives. Missing values come from QSTASH_URL / QSTASH_TOKEN."""

    url: str | None = Field(None, description="QStash base URL (default QSTASH_URL, then Upstash).")
    token: SecretStr | None = Field(None, description="Bearer token (default QSTASH_TOKEN).")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value).rstrip("/")

    def resolved(self, environ: Mapping[str, str] | None = None) -> tuple[str, SecretStr]:
        """(url, token) with environment fallbacks; ConfigError when there is no token."""
        env = os.environ if environ is None else environ
        url = (self.url or env.get("QSTASH_URL") or "https://qstash.upstash.io").rstrip("/")
        token = self.token.get_secret_value() if self.token else env.get("QSTASH_TOKEN")
        if not token:
            raise ConfigError(
                "No QStash token: set qstash.token in the bridge config or QSTASH_TOKEN in the "
                "environment (for the local server, `migrator dev up --json` prints one)."
            )
        return url, SecretStr(token)


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
        return _check_duration(value)

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
        return _check_duration(value)

    @field_validator("callback", "failure_callback")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)


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
    queue: str = Field(description="Queue name; {topic} and {partition} are replaced per record.")
    url: Url

    @model_validator(mode="after")
    def _no_delay(self) -> EnqueueQueueDestination:
        if self.delay is not None:
            raise ValueError("QStash queues do not support delay; remove `delay` from this route")
        return self


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


class PayloadPolicy(_Frozen):
    """How a record's value becomes the HTTP body."""

    mode: Literal["bytes", "decode"] = Field(
        "bytes", description="bytes: pass through; decode: Schema-Registry framed value to JSON."
    )
    decimal: Literal["number", "string"] = Field(
        "number", description="How decoded decimals appear in JSON (never base64)."
    )
    schema_registry_url: str | None = Field(
        None, description="Registry base URL for decode mode (or SCHEMA_REGISTRY_URL)."
    )


class Route(_Frozen):
    """Where one topic's records go."""

    topic: str
    destinations: list[Destination] = Field(min_length=1)
    payload: PayloadPolicy = Field(default_factory=lambda: PayloadPolicy.model_validate({}))
    tombstone: Literal["skip", "forward_empty", "dead_letter"] = "skip"
    ordered: bool = Field(
        False, description="Keep per-partition order: a partition's next batch waits for the last."
    )
    name: str | None = Field(None, description="Route name in metrics and dead letters.")

    @property
    def route_name(self) -> str:
        return self.name or self.topic


QSTASH_BATCH_COUNT = 500  # records per /v2/batch request unless batch.count says otherwise
DIRECT_BATCH_COUNT = 50  # records a direct-http worker sends in a row unless batch.count says


class BatchPolicy(_Frozen):
    """When a batch is sent: whichever of count, bytes or linger comes first."""

    count: int | None = Field(
        None, ge=1, le=10_000,
        description=(
            f"Records per batch. Unset: {QSTASH_BATCH_COUNT} for QStash destinations (one "
            f"/v2/batch request; with a distant QStash, throughput is about in_flight.batches x "
            f"count per round trip) and {DIRECT_BATCH_COUNT} for direct-http (one request per "
            "record, sent in a row by one worker)."
        ),
    )
    bytes: int = Field(1_000_000, ge=1)
    linger_ms: float = Field(5.0, ge=0)

    def count_for(self, direct: bool) -> int:
        """The batch size of one destination kind."""
        if self.count is not None:
            return self.count
        return DIRECT_BATCH_COUNT if direct else QSTASH_BATCH_COUNT


class RetryPolicy(_Frozen):
    """Retries for 429, 5xx and timeouts: exponential backoff with jitter."""

    max_attempts: int = Field(
        20, ge=1, description="Attempts before a record is dead-lettered as retries-exhausted."
    )
    initial_backoff: float = Field(0.2, gt=0, description="Seconds before the first retry.")
    max_backoff: float = Field(30.0, gt=0, description="Longest computed wait, seconds.")
    jitter: float = Field(0.2, ge=0, le=1, description="Random +- fraction of each wait.")
    cap: float = Field(
        120.0, gt=0, description="Longest wait honoured from Retry-After / rate-limit headers."
    )
    count_outages: bool = Field(
        False,
        description=(
            "False: failures of the whole destination (QStash answering a whole request 429 or "
            "5xx or timing out, e.g. its daily quota or an outage; a direct endpoint refusing "
            "connections) are retried for as long as they last, holding the records (partitions "
            "pause) instead of dead-lettering them, and a Schema Registry that does not answer "
            "holds a decode route's partition. True: they count toward max_attempts, and a "
            "registry outage dead-letters records as undecodable."
        ),
    )


class InFlightLimits(_Frozen):
    """Backpressure: partitions are paused while these are exceeded."""

    records: int = Field(20_000, ge=1)
    bytes: int = Field(32 * 1024 * 1024, ge=1)
    batches: int = Field(16, ge=1, description="Concurrent requests (delivery pool size).")


class DeadLetterPolicy(_Frozen):
    """Where undeliverable records go."""

    topic: str | None = Field(None, description="Kafka topic for dead letters.")


StartPosition = Literal["earliest", "latest", "timestamp", "start_from_group"]


class BridgeConfig(_Frozen):
    """The whole ``bridge.yaml``."""

    kafka: KafkaSection = Field(default_factory=lambda: KafkaSection.model_validate({}))
    qstash: QStashSection = Field(default_factory=lambda: QStashSection.model_validate({}))
    group: str = Field("migrator-bridge", description="Consumer group of the bridge.")
    start: StartPosition = Field(
        "earliest", description="Where a partition without committed offset starts."
    )
    start_timestamp: datetime | None = Field(None, description="For start=timestamp (ISO 8601).")
    start_from_group: str | None = Field(None, description="For start=start_from_group.")
    routes: list[Route] = Field(min_length=1)
    batch: BatchPolicy = Field(default_factory=lambda: BatchPolicy.model_validate({}))
    retry: RetryPolicy = Field(default_factory=lambda: RetryPolicy.model_validate({}))
    in_flight: InFlightLimits = Field(default_factory=lambda: InFlightLimits.model_validate({}))
    dead_letter: DeadLetterPolicy = Field(
        default_factory=lambda: DeadLetterPolicy.model_validate({})
    )
    metrics_port: int | None = Field(None, ge=0, le=65535)
    shutdown_deadline: float = Field(30.0, gt=0, description="Seconds to drain on stop/revoke.")
    json_logs: bool = False
    cutover_topic: str = Field("_migrator_cutover", description="Compacted topic holding the "
                               "cutover state of each replaced group (docs/cutover.md).")

    @model_validator(mode="after")
    def _consistent(self) -> BridgeConfig:
        if self.start == "timestamp" and self.start_timestamp is None:
            raise ValueError("start: timestamp needs start_timestamp (ISO 8601)")
        if self.start == "start_from_group" and not self.start_from_group:
            raise ValueError("start: start_from_group needs start_from_group: <old group>")
        topics = [r.topic for r in self.routes]
        dupes = sorted({t for t in topics if topics.count(t) > 1})
        if dupes:
            raise ValueError(f"topic(s) {dupes} have more than one route; merge their destinations")
        needs_dlq = any(r.tombstone == "dead_letter" for r in self.routes)
        if needs_dlq and not self.dead_letter.topic:
            raise ValueError("tombstone: dead_letter needs dead_letter.topic")
        return self

    def uses_qstash(self) -> bool:
        return any(d.kind != "direct-http" for r in self.routes for d in r.destinations)


# ---------------------------------------------------------------------------------------------
# Loading with file:line error reports


def load_bridge_config(
    path: str | Path, overrides: Mapping[str, Any] | None = None
) -> BridgeConfig:
    """Read and validate ``path`` (YAML or JSON); ``overrides`` replace top-level keys."""
    return load_model(path, BridgeConfig, "bridge config", "migrator bridge schema",
                      overrides=overrides, hidden_loc=_KINDS)


# The discriminator tags pydantic inserts into the locations of the destination union.
_KINDS = frozenset({"publish-url", "publish-url-group", "enqueue-queue", "workflow", "direct-http"})
