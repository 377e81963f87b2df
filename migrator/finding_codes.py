"""The codes of what stands in a migration's way, each with its severity, title and remedy.

This is the one rule for what blocks a migration: the audit's findings (:mod:`migrator.audit
.findings`) and the plan's blockers (:mod:`migrator.plan.builder`) take a code's severity from
here, so an audit and a plan of the same estate never disagree about it.

- blocker: the workload cannot move to QStash as it stands on the chosen tier (a record above
  the message size limit, a daily quota exceeded): fix the payloads or choose a larger tier;
- warning: it can move, with a design change the team has to make (a compacted topic's
  latest-value-per-key state, a Kafka Streams application's internal topics, ...);
- info: worth knowing when planning (maps onto a QStash feature).

Codes are stable (documented in docs/audit.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from migrator.inventory import Severity

__all__ = ["CATALOG", "CodeInfo", "plan_severity"]


@dataclass(frozen=True)
class CodeInfo:
    severity: Severity
    title: str
    remedy: str


CATALOG: dict[str, CodeInfo] = {
    "RECORD_TOO_LARGE": CodeInfo(
        "blocker",
        "Records larger than the QStash plan's message size limit",
        "Move large payloads to object storage and publish a reference (claim-check), split "
        "them, or choose a plan with a larger limit (--qstash-plan).",
    ),
    "COMPACTED_TOPIC": CodeInfo(
        "warning",
        "Log-compacted topic: consumers rely on the latest value per key",
        "QStash delivers messages, it keeps no per-key state: keep the latest value per key in "
        "a database (e.g. Upstash Redis) that the endpoint updates, and bootstrap it once.",
    ),
    "STREAMS_INTERNAL_TOPIC": CodeInfo(
        "warning",
        "Kafka Streams internal topic (changelog or repartition)",
        "Do not migrate the topic itself: it belongs to a Kafka Streams application whose state "
        "and repartitioning have to be redesigned (e.g. as an Upstash Workflow with its own store).",
    ),
    "ORDERING_SENSITIVE": CodeInfo(
        "warning",
        "Keyed records read by a consumer group: per-key order probably matters",
        "Deliver through QStash FIFO queues with parallelism 1, each partition to one queue "
        "(`migrator plan` does): they keep order through retries; flow control does not.",
    ),
    "FAN_OUT": CodeInfo(
        "info",
        "Topic read by several consumer groups",
        "Map the topic to a QStash URL group with one endpoint per group; every endpoint is "
        "billed as one message per record.",
    ),
    "CONSUMER_LAG": CodeInfo(
        "warning",
        "Consumer group has unconsumed records",
        "Let the group drain (or record its offsets) before cutting over, so no record is lost "
        "or delivered twice; `migrator bridge` can start from the committed offsets.",
    ),
    "STALE_CONSUMER_GROUP": CodeInfo(
        "info",
        "Consumer group with no members whose offsets do not move",
        "Confirm the application is retired and leave the group out of the migration, or "
        "restart it to drain before cutover.",
    ),
    "TOMBSTONES": CodeInfo(
        "warning",
        "Topic carries tombstones (records with a null value)",
        "QStash has no null body: decide what a delete means for the endpoint (e.g. an empty "
        "body with an `Upstash-Forward-Kafka-Tombstone` header) and handle it there.",
    ),
    "SCHEMA_ENCODED_PAYLOADS": CodeInfo(
        "warning",
        "Values are Schema-Registry framed (Avro, JSON Schema or Protobuf)",
        "Endpoints cannot read framed binary: decode to JSON in the bridge (the registry must "
        "stay reachable), or have producers publish JSON directly.",
    ),
    "CONNECTOR_NEEDS_MAPPING": CodeInfo(
        "warning",
        "Kafka Connect connector has no direct QStash equivalent",
        "Sink connectors become QStash destinations (an endpoint doing the connector's job); "
        "source connectors keep feeding Kafka until producers publish to QStash themselves.",
    ),
    "DAILY_QUOTA": CodeInfo(
        "blocker",
        "Projected messages per day exceed the QStash plan's daily quota",
        "Choose a plan with a larger quota (pay-as-you-go has none), batch several records "
        "per message, or leave high-volume topics on Kafka.",
    ),
    "SOURCE_UNAVAILABLE": CodeInfo(
        "warning",
        "A source could not be read; its section of the report is incomplete",
        "Check the URL and credentials (--schema-registry-url/-user/-password, --connect-url/"
        "-user/-password) and that the service is up, then run the audit again.",
    ),
    "PERMISSION_DENIED": CodeInfo(
        "warning",
        "Kafka refused the audit's principal an operation; that part of the report is missing",
        "Grant the audit principal the read-only ACL named in the finding (kafka-acls --add "
        "--allow-principal ... --operation ...), then run the audit again.",
    ),
    "DEAD_LETTER_TOPIC": CodeInfo(
        "info",
        "Dead-letter topic",
        "QStash keeps failed messages in its own DLQ (retention by plan): replay or drain this "
        "topic before cutover and point failure handling at QStash's DLQ or a failure callback.",
    ),
}


def plan_severity(code: str) -> Literal["blocker", "warning"]:
    """The severity a plan blocker of ``code`` carries: the catalog's (an info code, which never
    blocks, is a warning in a plan)."""
    return "blocker" if CATALOG[code].severity == "blocker" else "warning"
