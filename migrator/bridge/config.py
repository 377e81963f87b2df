"""``bridge.yaml``: the bridge's configuration, validated once into a frozen model.

:func:`load_bridge_config` reads YAML or JSON and turns every validation error into a
:class:`~migrator.errors.ConfigError` naming the file, the line and the field path, e.g.
``bridge.yaml:14: routes[0].destinations[1].retries: Input should be a valid integer``.
``BridgeConfig.model_json_schema()`` is what ``migrator bridge schema`` prints.

The destination models are the connectors' own (:mod:`connectors.destinations`); they are
re-exported here because a route holds them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from connectors.destinations import (
    DESTINATION_KINDS,
    Destination,
    DirectHttpDestination,
    EnqueueQueueDestination,
    FlowControl,
    PublishUrlDestination,
    PublishUrlGroupDestination,
    WorkflowDestination,
    check_url,
)
from migrator.config import KafkaConnection, QStashConnection, SaslMechanism, SecurityProtocol
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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")




class KafkaSection(_Frozen):
    """How to reach Kafka, as in ``migrator audit``: servers, a properties file, options."""

    bootstrap_servers: str | None = Field(
        None, description="Comma-separated host:port list (or KAFKA_BOOTSTRAP_SERVERS)."
    )
    properties_file: str | None = Field(
        None, description="Java client properties file (relative to the config file)."
    )
    security_protocol: SecurityProtocol | None = None
    sasl_mechanism: SaslMechanism | None = None  # AWS_MSK_IAM: region and role in `options`
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
        """The validated connection: the config's settings under the CLI's ``properties_file``
        (``--kafka-config``, replacing ``kafka.properties_file``) and ``x_options`` (``-X``);
        the precedence is :meth:`KafkaConnection.build`'s."""
        config_file: str | Path | None = self.properties_file  # relative to the config file
        if config_file is not None and base_dir is not None and not Path(config_file).is_absolute():
            config_file = base_dir / config_file
        settings = {key: value for key, value in (
            ("bootstrap.servers", self.bootstrap_servers),
            ("security.protocol", self.security_protocol),
            ("sasl.mechanism", self.sasl_mechanism),
            ("sasl.username", self.sasl_username),
            ("sasl.password", self.sasl_password.get_secret_value() if self.sasl_password else None),
        ) if value}
        return KafkaConnection.build(
            properties_file=properties_file, x_options=x_options, environ=environ,
            config={**settings, **self.options}, config_properties_file=config_file,
            config_name="bridge config",
        )


class QStashSection(_Frozen):
    """Where QStash lives. Missing values come from QSTASH_URL / QSTASH_TOKEN."""

    url: str | None = Field(None, description="QStash base URL (default QSTASH_URL, then Upstash).")
    token: SecretStr | None = Field(None, description="Bearer token (default QSTASH_TOKEN).")
    request_timeout: float = Field(
        30.0, gt=0, le=600,
        description="Seconds to wait for QStash to answer a publish; past it the request counts "
                    "as an outage and is retried (a hung connection never stalls the bridge).",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value).rstrip("/")

    def resolved(self, environ: Mapping[str, str] | None = None) -> QStashConnection:
        """The QStash endpoint with environment fallbacks; ConfigError when there is no token."""
        return QStashConnection.from_env(self.url, self.token, environ=environ,
                                         where="qstash.token in the bridge config")


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
                      overrides=overrides, hidden_loc=DESTINATION_KINDS)
